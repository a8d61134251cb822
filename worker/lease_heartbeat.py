"""A background thread that renews a job's lease while the engine runs."""

from __future__ import annotations

import logging
import threading

from impasto.shared.jobs import renew_lease
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)


class LeaseHeartbeat:
    """Renews the lease every third of its length; notices when another worker took the job."""

    def __init__(self, sessions: sessionmaker[Session], job_id: str, owner: str, lease_seconds: float) -> None:
        self.sessions = sessions
        self.job_id = job_id
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job_id[:8]}", daemon=True)

    def __enter__(self) -> LeaseHeartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            try:
                with self.sessions() as session:
                    if not renew_lease(session, self.job_id, self.owner, self.lease_seconds):
                        log.warning("job %s: lease lost to another worker; stopping", self.job_id)
                        self.lost.set()
                        return
            except SQLAlchemyError as exc:  # the database may blip; the lease has slack for it
                log.warning("job %s: lease renewal failed (%s); retrying", self.job_id, exc)
