"""Retention: expired Idempotency-Key records are deleted, and a finished job's images (final and
snapshots) are deleted after retention_s; the row stays, marked expired, and its image URLs
answer 410. Safe in several reconciler copies: deleting files twice is harmless, and the mark
is a conditional UPDATE."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.orm import Session, sessionmaker

from impasto.shared.job_records import mark_expired
from impasto.shared.models import IdempotencyKey, Job, utcnow
from impasto.shared.settings import Settings
from impasto.shared.status import FINISHED
from impasto.shared.storage import Storage, job_prefix

log = logging.getLogger(__name__)

BATCH = 200  # jobs per pass: a backlog (a lowered setting) drains over a few passes, not one long one


def expire_jobs(sessions: sessionmaker[Session], storage: Storage, settings: Settings) -> list[str]:
    """Delete the images of jobs finished more than retention_s ago; returns the ids marked expired."""
    cutoff = utcnow() - timedelta(seconds=settings.retention_s)
    expired: list[str] = []
    with sessions() as session:
        due = session.scalars(
            select(Job.id)
            .where(
                Job.status.in_([status.value for status in FINISHED]),
                Job.finished_at < cutoff,
                Job.expired_at.is_(None),
            )
            .limit(BATCH)
        ).all()
        for job_id in due:
            # Files first, then the mark: a crash in between leaves the job to the next pass,
            # never a row marked expired with its files still stored.
            storage.delete_prefix(job_prefix(job_id))
            if mark_expired(session, job_id):
                expired.append(job_id)
    if expired:
        log.info("expired the images of %d job(s)", len(expired))
    return expired


def purge_expired_keys(session: Session) -> int:
    """Delete expired keys; returns how many."""
    result = cast(
        CursorResult[Any], session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= utcnow()))
    )
    session.commit()
    return int(result.rowcount)
