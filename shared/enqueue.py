"""Everything impasto sends to the broker, by task name, through the Celery app the caller gives:
a job's transfer task, and its webhook deliveries. No app is made here."""

from __future__ import annotations

import logging

from celery import Celery
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from impasto.shared.job_records import mark_enqueued
from impasto.shared.task_names import TRANSFER_TASK, WEBHOOK_QUEUE, WEBHOOK_TASK
from impasto.shared.webhooks import WebhookTarget

log = logging.getLogger(__name__)
# Fail fast when the broker is down: with retry=False kombu still connects through its default
# channel, which waits 2 s and 4 s between tries; one immediate retry fails in milliseconds. The
# API must answer, and a webhook must never hold up a GPU.
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
        mark_enqueued(session, job_id)
        session.commit()
    except SQLAlchemyError as exc:  # the message is out; at worst the reconciler sends a duplicate
        session.rollback()
        log.warning("job %s: enqueued, but enqueued_at not recorded (%s)", job_id, exc)
    return True


def send_webhook(celery: Celery, target: WebhookTarget | None, job_id: str, event: str, iteration: int = 0) -> None:
    """Enqueue one delivery if the job wants this event; never raises, never waits on the receiver.

    The delivery itself is a task of `impasto webhook-worker` (impasto/background/webhook_delivery.py).
    """
    if target is None or event not in target.events:
        return
    try:
        celery.send_task(
            WEBHOOK_TASK, args=[job_id, event, iteration], queue=WEBHOOK_QUEUE, retry=True, retry_policy=FAIL_FAST
        )
    except Exception as exc:  # a broker outage costs this event, never the job
        log.warning("job %s: webhook %s not enqueued (%s)", job_id, event, exc)
