"""A worker's lease on one running job: the one object that renews it and knows when it is lost."""

from __future__ import annotations

import logging
import threading

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from impasto.shared.jobs import renew_lease

log = logging.getLogger(__name__)


class Lease:
    """`owner`'s hold on a job: renewed every third of its length while kept (`with lease:`), and before
    each write into the job's files; `lost` is set once another owner (or the reconciler) has the job."""

    def __init__(self, sessions: sessionmaker[Session], job_id: str, owner: str, lease_seconds: float) -> None:
        self.sessions = sessions
        self.job_id = job_id
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.lost = threading.Event()
        self._released = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def renew_in(self, session: Session) -> bool:
        """Push the expiry forward in `session`; False, with `lost` set, if the job is not ours any more."""
        held = renew_lease(session, self.job_id, self.owner, self.lease_seconds)
        if not held:
            self.lost.set()
        return held

    def renew(self) -> bool:
        """Push the expiry forward; False if the job is not ours any more. Raises SQLAlchemyError."""
        with self.sessions() as session:
            return self.renew_in(session)

    def __enter__(self) -> Lease:
        """Keep the lease alive from a background thread until released."""
        self._heartbeat = threading.Thread(target=self._beat, name=f"lease-{self.job_id[:8]}", daemon=True)
        self._heartbeat.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()

    def release(self) -> None:
        """Stop renewing: the run is over (its end, or hand-back, clears the lease in SQL)."""
        self._released.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=5)

    def _beat(self) -> None:
        while not self._released.wait(self.lease_seconds / 3):
            try:
                if not self.renew():
                    log.warning("job %s: lease lost to another worker; stopping", self.job_id)
                    return
            except SQLAlchemyError as exc:  # the database may blip; the lease has slack for it
                log.warning("job %s: lease renewal failed (%s); retrying", self.job_id, exc)
