"""The webhook delivery task. `impasto webhook-worker` (impasto/cli/webhooks.py) runs it on the
`webhooks` queue in a thread pool, apart from the GPU workers: a slow receiver holds a thread (for one attempt's
deadline at most, impasto/background/webhook_http.py), never a GPU.
No torch here."""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass

from celery import Task, shared_task
from sqlalchemy.orm import Session, sessionmaker

from impasto.background.webhook_http import WebhookPostFailed, post_webhook
from impasto.shared.database import make_engine, make_sessionmaker
from impasto.shared.models import Job
from impasto.shared.settings import Settings, get_settings
from impasto.shared.task_names import WEBHOOK_TASK
from impasto.shared.webhook_signing import sign, webhook_signing_key
from impasto.shared.webhooks import (
    WebhookRefused,
    parse_webhook_url,
    payload,
    resolve_webhook_url,
    webhook_id,
    webhook_target,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryContext:
    """What a webhook worker process holds: settings and SQL sessions."""

    settings: Settings
    sessions: sessionmaker[Session]


@functools.cache
def delivery_context() -> DeliveryContext:
    """This process's context, from the environment, built on first use."""
    settings = get_settings()
    return DeliveryContext(settings=settings, sessions=make_sessionmaker(make_engine(settings)))


class DeliveryFailed(Exception):
    """One attempt did not get a 2xx."""


def backoff_s(retries: int, settings: Settings) -> float:
    """Wait before retry number `retries` + 1: exponential, capped."""
    return float(min(settings.webhook_backoff_max_s, settings.webhook_backoff_s * 2**retries))


@shared_task(name=WEBHOOK_TASK, bind=True, ignore_result=True, acks_late=True)
def deliver_webhook(self: Task, job_id: str, event: str, iteration: int, body: str | None = None) -> str:
    """POST one signed event to the job's webhook; retry with backoff on failure."""
    ctx = delivery_context()
    settings = ctx.settings
    with ctx.sessions() as session:
        job = session.get(Job, job_id)
        target = webhook_target(job) if job is not None else None
        if job is None or target is None or event not in target.events:
            return "skipped"
        # The body is built once, at the first attempt, and carried by the retries unchanged.
        body = body or payload(job, event, iteration, settings.url)
    if settings.webhook_secret is None:
        log.warning("job %s: webhook %s dropped: IMPASTO_WEBHOOK_SECRET is not set", job_id, event)
        return "no_secret"
    try:
        # Again at delivery, resolved once: the name may point somewhere else since the job was
        # submitted, and the POST goes to an address checked here, never to a second lookup's.
        url = parse_webhook_url(target.url)
        addresses = resolve_webhook_url(url, settings.webhook_allow_private)
    except WebhookRefused as exc:
        log.warning("job %s: webhook %s refused: %s", job_id, event, exc)
        return "refused"
    delivery_id = webhook_id(job_id, event, iteration)
    timestamp = int(time.time())
    key = webhook_signing_key(settings.webhook_secret.get_secret_value())
    headers = {
        "content-type": "application/json",
        "webhook-id": delivery_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(key, delivery_id, timestamp, body),
    }
    try:
        # No redirects are followed: a redirect could lead to an address the check above refuses.
        status = post_webhook(
            url, addresses, body.encode(), headers, settings.webhook_timeout_s, settings.webhook_ca_file
        )
        if not 200 <= status < 300:
            raise DeliveryFailed(f"answered {status}")
    except (WebhookPostFailed, DeliveryFailed) as exc:
        retries: int = self.request.retries
        if retries >= settings.webhook_max_retries:
            log.warning("job %s: webhook %s dropped after %d retries: %s", job_id, event, retries, exc)
            return "dropped"
        countdown = backoff_s(retries, settings)
        log.info("job %s: webhook %s failed (%s); retry in %.1f s", job_id, event, exc, countdown)
        raise self.retry(
            args=[job_id, event, iteration], kwargs={"body": body}, countdown=countdown, max_retries=None
        ) from exc
    return "delivered"
