"""Hand a job's message to the broker, by task name, and note when."""

from __future__ import annotations

import logging

from celery import Celery
from impasto.shared.models import Job, utcnow
from impasto.shared.task_names import TRANSFER_TASK
from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)
# Fail fast when the broker is down: with retry=False kombu still connects through its default
# channel, which waits 2 s and 4 s between tries; one immediate retry fails in milliseconds.
FAIL_FAST = {"max_retries": 1, "interval_start": 0, "interval_step": 0.1, "interval_max": 0.1}


def send_transfer(celery: Celery, job_id: str, queue: str) -> bool:
    """Publish impasto.transfer(job_id); False (logged) if the broker is unreachable."""
    try:
        celery.send_task(TRANSFER_TASK, args=[job_id], queue=queue, retry=True, retry_policy=FAIL_FAST)
    except Exception as exc:  # kombu raises many kinds for a broker that is down
        log.warning("job %s: enqueue failed (%s); the reconciler will send it later", job_id, exc)
        return False
    return True


def enqueue_job(celery: Celery, session: Session, job_id: str, queue: str) -> bool:
    """Send the job's message (after its row is committed) and record enqueued_at on success."""
    if not send_transfer(celery, job_id, queue):
        return False
    try:
        session.execute(update(Job).where(Job.id == job_id).values(enqueued_at=utcnow()))
        session.commit()
    except SQLAlchemyError as exc:  # the message is out; at worst the reconciler sends a duplicate
        session.rollback()
        log.warning("job %s: enqueued, but enqueued_at not recorded (%s)", job_id, exc)
    return True
