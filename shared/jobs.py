"""Job rows: create, transition, cancel, delete, and the lease-guarded writes a worker makes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from impasto.shared.models import Job, JobSnapshot, JobStatusChange, utcnow
from impasto.shared.status import FINISHED, JobStatus
from sqlalchemy import CursorResult, Update, select, update
from sqlalchemy.orm import Session


def as_utc(moment: datetime | None) -> datetime | None:
    """A datetime from SQL as aware UTC (SQLite hands back naive values)."""
    if moment is None:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def execute_update(session: Session, statement: Update) -> int:
    """Run an UPDATE and return how many rows it changed (the atomic test-and-set of this module)."""
    result = cast(CursorResult[Any], session.execute(statement))
    return int(result.rowcount)


def record_transition(session: Session, job_id: str, status: JobStatus, worker: str | None, attempt: int) -> None:
    """Append one row to the job's status history (the caller commits)."""
    session.add(JobStatusChange(job_id=job_id, status=status.value, worker=worker, attempt=attempt))


def create_job(session: Session, *, params: dict[str, Any], content_key: str, style_keys: list[str], queue: str) -> Job:
    """Insert a queued job and its first history row; the caller commits, then enqueues."""
    job = Job(
        params=params,
        content_key=content_key,
        style_keys=style_keys,
        queue=queue,
        iterations=int(params["iterations"]),
        status=JobStatus.QUEUED.value,
        iteration=0,
        attempts=0,
        cancel_requested=False,
    )
    session.add(job)
    session.flush()
    record_transition(session, job.id, JobStatus.QUEUED, None, 0)
    return job


def request_cancel(session: Session, job: Job) -> tuple[Job, bool]:
    """Cancel a job: a queued one at once, a running one by flag; finished ones are left alone.

    The bool says whether this call ended the job (it was queued): of concurrent cancels, one.
    """
    moved = execute_update(
        session,
        update(Job)
        .where(Job.id == job.id, Job.status == JobStatus.QUEUED.value)
        .values(status=JobStatus.CANCELED.value, finished_at=utcnow(), cancel_requested=True),
    )
    if moved:
        record_transition(session, job.id, JobStatus.CANCELED, None, job.attempts)
    else:  # not queued (any more): a worker may have claimed it since it was read
        execute_update(
            session,
            update(Job).where(Job.id == job.id, Job.status == JobStatus.RUNNING.value).values(cancel_requested=True),
        )
    session.commit()
    session.refresh(job)
    return job, bool(moved)


def end_expired_lease(session: Session, job_id: str, max_attempts: int) -> JobStatus | None:
    """Take back a running job whose lease expired, in one conditional UPDATE with its history row.

    Its worker is gone: the job goes back to `queued`, or ends `failed` (worker_lost) once its
    lost runs reach the cap (runs handed back at a shutdown do not count), or `canceled` if a
    cancel was pending. Returns the new status, or None when there was nothing to take back
    (not running, lease live, or another caller won).
    """
    now = utcnow()
    row = session.execute(
        select(Job.attempts, Job.lost_runs, Job.cancel_requested).where(
            Job.id == job_id, Job.status == JobStatus.RUNNING.value, Job.lease_expires_at < now
        )
    ).first()
    if row is None:
        return None
    attempts, lost_runs, cancel_requested = row
    lost_runs += 1  # this run
    values: dict[str, Any] = {"lost_runs": lost_runs}
    if cancel_requested:  # its worker died while stopping: nobody will run it again
        status, values = JobStatus.CANCELED, {**values, "finished_at": now}
    elif lost_runs >= max_attempts:
        message = f"the job's worker was lost {lost_runs} times; giving up"
        status, values = (
            JobStatus.FAILED,
            {**values, "finished_at": now, "error_code": "worker_lost", "error_message": message},
        )
    else:
        status, values = JobStatus.QUEUED, {**values, "enqueued_at": now}
    won = execute_update(
        session,
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.RUNNING.value, Job.lease_expires_at < now)
        .values(status=status.value, lease_owner=None, lease_expires_at=None, **values),
    )
    if not won:
        session.rollback()
        return None
    record_transition(session, job_id, status, None, attempts)
    session.commit()
    return status


def claim_job(session: Session, job_id: str, owner: str, lease_seconds: float) -> bool:
    """Atomically take a queued job with a lease; True if taken.

    A running job on an expired lease is not claimable here: `end_expired_lease` first moves it
    back to `queued` (with its history row), so every run in the history has its own end.
    """
    now = utcnow()
    taken = execute_update(
        session,
        update(Job)
        .where(Job.id == job_id, Job.cancel_requested.is_(False), Job.status == JobStatus.QUEUED.value)
        .values(
            status=JobStatus.RUNNING.value,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            worker=owner,
            attempts=Job.attempts + 1,
            started_at=now,
        ),
    )
    if taken:
        attempts = session.execute(select(Job.attempts).where(Job.id == job_id)).scalar_one()
        record_transition(session, job_id, JobStatus.RUNNING, owner, attempts)
    session.commit()
    return bool(taken)


def owned_update(session: Session, job_id: str, owner: str, **values: Any) -> bool:
    """Update a running job only while `owner` holds its lease; False means the lease is gone."""
    changed = execute_update(
        session,
        update(Job)
        .where(Job.id == job_id, Job.lease_owner == owner, Job.status == JobStatus.RUNNING.value)
        .values(**values),
    )
    session.commit()
    return bool(changed)


def renew_lease(session: Session, job_id: str, owner: str, lease_seconds: float) -> bool:
    """Push the lease expiry forward; False if another worker owns the job now."""
    return owned_update(session, job_id, owner, lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))


def finish_job(session: Session, job_id: str, owner: str, status: JobStatus, **values: Any) -> bool:
    """Move a running job owned by `owner` to an end state, with its history row."""
    assert status in FINISHED
    changed = execute_update(
        session,
        update(Job)
        .where(Job.id == job_id, Job.lease_owner == owner, Job.status == JobStatus.RUNNING.value)
        .values(status=status.value, finished_at=utcnow(), lease_owner=None, lease_expires_at=None, **values),
    )
    if changed:
        attempts = session.execute(select(Job.attempts).where(Job.id == job_id)).scalar_one()
        record_transition(session, job_id, status, owner, attempts)
    session.commit()
    return bool(changed)


def hand_back(session: Session, job_id: str, owner: str) -> bool:
    """Return a running job to the queue (graceful shutdown); one being canceled ends canceled."""
    canceling = session.execute(select(Job.cancel_requested).where(Job.id == job_id)).scalar_one_or_none()
    status = JobStatus.CANCELED if canceling else JobStatus.QUEUED
    extra = {"finished_at": utcnow()} if canceling else {"enqueued_at": None}
    changed = execute_update(
        session,
        update(Job)
        .where(Job.id == job_id, Job.lease_owner == owner, Job.status == JobStatus.RUNNING.value)
        .values(status=status.value, lease_owner=None, lease_expires_at=None, **extra),
    )
    if changed:
        attempts = session.execute(select(Job.attempts).where(Job.id == job_id)).scalar_one()
        record_transition(session, job_id, status, owner, attempts)
    session.commit()
    return bool(changed)


def add_snapshot(session: Session, job_id: str, iteration: int, key: str) -> None:
    """Record a stored snapshot (idempotent: a resumed run may write the same iteration)."""
    if session.get(JobSnapshot, (job_id, iteration)) is None:
        session.add(JobSnapshot(job_id=job_id, iteration=iteration, key=key))
    session.commit()


def latest_snapshot(session: Session, job_id: str) -> JobSnapshot | None:
    """The newest snapshot of a job: where a resumed run starts."""
    return session.execute(
        select(JobSnapshot).where(JobSnapshot.job_id == job_id).order_by(JobSnapshot.iteration.desc()).limit(1)
    ).scalar_one_or_none()
