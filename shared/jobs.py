"""Job rows: the state machine, and the only code (migrations aside) that inserts, updates or deletes them.

queued -> running (a claim, with a lease) -> succeeded | failed | canceled; running -> queued
(a hand-back at shutdown, or an expired lease); queued -> canceled. Every transition is one
conditional UPDATE, its guard in the WHERE clause, so of racing callers exactly one wins. Writes
that change no state (progress, enqueue and expiry marks) are in shared/job_records.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import ColumnElement, CursorResult, Delete, Update, delete, select, update
from sqlalchemy.orm import Session

from impasto.shared.models import Job, JobSnapshot, JobStatusChange, utcnow
from impasto.shared.status import FINISHED, JobStatus

Guard = Sequence[ColumnElement[bool]]  # the WHERE clause of a transition: what must still hold


class EndWatcher(Protocol):
    """Who is told that a job ended, after the end is committed (impasto.shared.job_endings.JobWatchers)."""

    def job_ended(self, job: Job) -> None:
        """The job (as committed) reached an end state."""


class Unwatched:
    """An end nobody hears of: for tests and tools that set rows up. The service passes JobWatchers."""

    def job_ended(self, job: Job) -> None:
        """Tell nobody."""


UNWATCHED = Unwatched()


def as_utc(moment: datetime | None) -> datetime | None:
    """A datetime from SQL as aware UTC (SQLite hands back naive values)."""
    if moment is None:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def execute_update(session: Session, statement: Update | Delete) -> int:
    """Run an UPDATE (or DELETE) and return how many rows it changed: the atomic test-and-set of this module."""
    result = cast(CursorResult[Any], session.execute(statement))
    return int(result.rowcount)


def record_transition(session: Session, job_id: str, status: JobStatus, worker: str | None, attempt: int) -> None:
    """Append one row to the job's status history (the caller commits)."""
    session.add(JobStatusChange(job_id=job_id, status=status.value, worker=worker, attempt=attempt))


QUEUED: Guard = (Job.status == JobStatus.QUEUED.value,)  # a job no worker has (any more)
RUNNING: Guard = (Job.status == JobStatus.RUNNING.value,)  # a job some worker runs


def held_by(owner: str) -> Guard:
    """The guard of a worker's writes: the job runs, and `owner` holds its lease."""
    return (Job.lease_owner == owner, *RUNNING)


def lease_expired(now: datetime) -> Guard:
    """The guard of a takeover: the job runs, and its lease expired before `now`."""
    return (*RUNNING, Job.lease_expires_at < now)


def _attempts(session: Session, job_id: str) -> int:
    return int(session.execute(select(Job.attempts).where(Job.id == job_id)).scalar_one())


def create_job(
    session: Session,
    *,
    params: dict[str, Any],
    content_key: str,
    style_keys: list[str],
    queue: str,
    owner_key_id: str | None = None,
    webhook_url: str | None = None,
    webhook_events: list[str] | None = None,
    mask_keys: dict[str, Any] | None = None,
) -> Job:
    """Insert a queued job, owned and with its webhook (and label images) from the start, and its first history row.

    The caller commits, then enqueues: no other transaction ever sees the job without its owner.
    """
    job = Job(
        params=params,
        content_key=content_key,
        style_keys=style_keys,
        queue=queue,
        owner_key_id=owner_key_id,
        webhook_url=webhook_url,
        webhook_events=webhook_events,
        mask_keys=mask_keys,
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


def claim_job(session: Session, job_id: str, owner: str, lease_seconds: float) -> bool:
    """queued -> running: atomically take a queued job with a lease; True if taken.

    A running job on an expired lease is not claimable here: `end_expired_lease` first moves it
    back to `queued` (with its history row), so every run in the history has its own end.
    """
    now = utcnow()
    taken = execute_update(
        session,
        update(Job)
        .where(*QUEUED, Job.id == job_id, Job.cancel_requested.is_(False))
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
        record_transition(session, job_id, JobStatus.RUNNING, owner, _attempts(session, job_id))
    session.commit()
    return bool(taken)


def owned_update(session: Session, job_id: str, owner: str, **values: Any) -> bool:
    """Update a running job only while `owner` holds its lease; False means the lease is gone."""
    changed = execute_update(session, update(Job).where(Job.id == job_id, *held_by(owner)).values(**values))
    session.commit()
    return bool(changed)


def renew_lease(session: Session, job_id: str, owner: str, lease_seconds: float) -> bool:
    """Push the lease expiry forward; False if another worker owns the job now."""
    return owned_update(session, job_id, owner, lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))


def end_job(
    session: Session,
    job_id: str,
    status: JobStatus,
    guard: Guard,
    watcher: EndWatcher,
    worker: str | None = None,
    **values: Any,
) -> bool:
    """The one way a job ends: the UPDATE under `guard`, its history row, the commit, then its watchers hear.

    False (nothing written, nobody told) when the guard no longer holds: another caller won.
    """
    assert status in FINISHED
    changed = execute_update(
        session,
        update(Job)
        .where(Job.id == job_id, *guard)
        .values(status=status.value, finished_at=utcnow(), lease_owner=None, lease_expires_at=None, **values),
    )
    if changed:
        record_transition(session, job_id, status, worker, _attempts(session, job_id))
    session.commit()
    if changed:  # populate_existing: the session may hold the row as it was read before this UPDATE
        watcher.job_ended(session.get_one(Job, job_id, populate_existing=True))
    return bool(changed)


def finish_job(
    session: Session, job_id: str, owner: str, status: JobStatus, watcher: EndWatcher, **values: Any
) -> bool:
    """running -> succeeded | failed | canceled, by the worker that holds the lease."""
    return end_job(session, job_id, status, held_by(owner), watcher, owner, **values)


def request_cancel(session: Session, job: Job, watcher: EndWatcher) -> tuple[Job, bool]:
    """queued -> canceled at once; a running job gets the flag its worker polls; a finished one is left alone.

    The bool says whether this call ended the job (it was queued): of concurrent cancels, one.
    """
    ended = end_job(session, job.id, JobStatus.CANCELED, QUEUED, watcher, cancel_requested=True)
    if not ended:  # not queued (any more): a worker may have claimed it since it was read
        execute_update(session, update(Job).where(Job.id == job.id, *RUNNING).values(cancel_requested=True))
        session.commit()
    session.refresh(job)
    return job, ended


def hand_back(session: Session, job_id: str, owner: str, watcher: EndWatcher) -> JobStatus | None:
    """running -> queued at a graceful shutdown; a job with a cancel pending ends canceled instead.

    Returns the new status, or None when `owner` no longer holds the lease.
    """
    back = execute_update(
        session,
        update(Job)
        .where(Job.id == job_id, *held_by(owner), Job.cancel_requested.is_(False))
        .values(status=JobStatus.QUEUED.value, lease_owner=None, lease_expires_at=None, enqueued_at=None),
    )
    if back:
        record_transition(session, job_id, JobStatus.QUEUED, owner, _attempts(session, job_id))
        session.commit()
        return JobStatus.QUEUED
    # A cancel is pending (or the lease is gone, and this end is refused too).
    return JobStatus.CANCELED if finish_job(session, job_id, owner, JobStatus.CANCELED, watcher) else None


def end_expired_lease(session: Session, job_id: str, max_attempts: int, watcher: EndWatcher) -> JobStatus | None:
    """running -> queued | failed | canceled: take back a running job whose lease expired.

    Its worker is gone: the job goes back to `queued`, or ends `failed` (worker_lost) once its
    lost runs reach the cap (runs handed back at a shutdown do not count), or `canceled` if a
    cancel was pending. Returns the new status, or None when there was nothing to take back
    (not running, lease live, or another caller won).
    """
    now = utcnow()
    row = session.execute(
        select(Job.attempts, Job.lost_runs, Job.cancel_requested).where(Job.id == job_id, *lease_expired(now))
    ).first()
    if row is None:
        return None
    attempts, lost_runs, cancel_requested = row
    lost_runs += 1  # this run
    status = JobStatus.QUEUED
    values: dict[str, Any] = {"lost_runs": lost_runs}
    if cancel_requested:  # its worker died while stopping: nobody will run it again
        status = JobStatus.CANCELED
    elif lost_runs >= max_attempts:
        message = f"the job's worker was lost {lost_runs} times; giving up"
        status = JobStatus.FAILED
        values.update(error_code="worker_lost", error_message=message)
    if status is not JobStatus.QUEUED:
        return status if end_job(session, job_id, status, lease_expired(now), watcher, **values) else None
    won = execute_update(
        session,
        update(Job)
        .where(Job.id == job_id, *lease_expired(now))
        .values(status=status.value, lease_owner=None, lease_expires_at=None, enqueued_at=now, **values),
    )
    if not won:
        session.rollback()
        return None
    record_transition(session, job_id, status, None, attempts)
    session.commit()
    return status


def delete_job(session: Session, job_id: str) -> bool:
    """Delete a finished job, its history and snapshots (ON DELETE CASCADE); False if it is not finished."""
    deleted = execute_update(
        session, delete(Job).where(Job.id == job_id, Job.status.in_([status.value for status in FINISHED]))
    )
    session.commit()
    return bool(deleted)


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
