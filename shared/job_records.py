"""Job-row writes that change no state: who runs it and how far it got, when its message went out,
when its images expired. Each is one conditional UPDATE; the transitions are in shared/jobs.py."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from impasto.shared.jobs import QUEUED, as_utc, execute_update, owned_update
from impasto.shared.models import Job, utcnow


def record_start(session: Session, job_id: str, owner: str, worker: str, device: str) -> bool:
    """Name the worker and device of the run `owner` just claimed, and the job's queue time (its first run's).

    False when the lease is gone already.
    """
    row = session.execute(select(Job.created_at, Job.started_at, Job.queue_seconds).where(Job.id == job_id)).one()
    values: dict[str, object] = {"worker": worker, "device": device}
    if row.queue_seconds is None:
        values["queue_seconds"] = (as_utc(row.started_at) - as_utc(row.created_at)).total_seconds()  # type: ignore[operator]
    return owned_update(session, job_id, owner, **values)


def record_progress(
    session: Session, job_id: str, owner: str, iteration: int, losses: dict[str, float], eta_seconds: float | None
) -> bool:
    """Write a run's progress while `owner` holds the lease; False means the lease is gone."""
    return owned_update(session, job_id, owner, iteration=iteration, losses=losses, eta_seconds=eta_seconds)


def mark_enqueued(session: Session, job_id: str) -> None:
    """Note that the job's message was handed to the broker just now (the caller commits)."""
    session.execute(update(Job).where(Job.id == job_id).values(enqueued_at=utcnow()))


def take_for_resend(session: Session, job_id: str, cutoff: datetime, now: datetime) -> bool:
    """Mark a queued job whose message is older than `cutoff` (or was never sent) as sent at `now`, and commit.

    True for the one reconciler copy that may re-send it: the mark is the test-and-set.
    """
    won = execute_update(
        session,
        update(Job)
        .where(Job.id == job_id, *QUEUED, or_(Job.enqueued_at.is_(None), Job.enqueued_at < cutoff))
        .values(enqueued_at=now),
    )
    session.commit()
    return bool(won)


def mark_expired(session: Session, job_id: str) -> bool:
    """Mark a job's images deleted by retention, and commit; True for the one caller that marked it."""
    unmarked = update(Job).where(Job.id == job_id, Job.expired_at.is_(None))
    won = execute_update(session, unmarked.values(expired_at=utcnow()))
    session.commit()
    return bool(won)
