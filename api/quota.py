"""The cap on one API key's unfinished (queued plus running) jobs."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from impasto.api.errors import ApiError
from impasto.shared.models import ApiKey, Job
from impasto.shared.status import JobStatus

# There is no telling when one of the key's jobs will end; a client told to retry after this
# polls gently, and a job of typical size has often finished by then.
QUOTA_RETRY_AFTER_S = 30
ACTIVE = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)


def check_active_jobs(session: Session, key_id: str, limit: int) -> None:
    """429 if the key already has `limit` unfinished jobs; call in the transaction that inserts the job."""
    # Lock the key's row until the insert commits, so two concurrent submissions cannot both
    # pass the count (PostgreSQL). SQLite ignores FOR UPDATE, but it is the one-machine set-up,
    # where the cap stays a soft one.
    session.execute(select(ApiKey.id).where(ApiKey.id == key_id).with_for_update())
    active = session.scalar(
        select(func.count()).select_from(Job).where(Job.owner_key_id == key_id, Job.status.in_(ACTIVE))
    )
    if (active or 0) >= limit:
        raise ApiError(
            429,
            "too_many_active_jobs",
            f"this API key has {active} queued or running jobs, the most it may have; "
            "wait for one to finish (or cancel one) and retry",
            headers={"Retry-After": str(QUOTA_RETRY_AFTER_S)},
        )
