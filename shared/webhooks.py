"""Webhooks: URL checks, Standard Webhooks signatures, payloads, and the enqueue the worker does.

The signing key is one server secret (IMPASTO_WEBHOOK_SECRET), not one per API key: it needs no
new key storage (a per-key secret would have to be stored recoverably, i.e. in plain text or
under yet another key), and an operator rotates it in one place. Receivers get it from the operator.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import ipaddress
import json
import logging
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from celery import Celery

from shared.models import Job
from shared.settings import Settings

log = logging.getLogger(__name__)

WEBHOOK_EVENTS: tuple[str, ...] = ("start", "snapshot", "completed")
MAX_URL_LENGTH = 2000  # longer URLs are refused: no receiver needs one, and the column is for humans too
# Fail fast when the broker is down (as shared.enqueue): a webhook must never hold up a GPU.
FAIL_FAST = {"max_retries": 1, "interval_start": 0, "interval_step": 0.1, "interval_max": 0.1}


class WebhookRefused(ValueError):
    """A webhook URL that may not be called."""


@dataclass(frozen=True)
class WebhookTarget:
    """Where a job's events go and which ones."""

    url: str
    events: frozenset[str]


def check_webhook_url(url: str, allow_private: bool) -> None:
    """Refuse a URL that is not http(s) or resolves to a private, loopback or link-local address."""
    if len(url) > MAX_URL_LENGTH:
        raise WebhookRefused(f"longer than {MAX_URL_LENGTH} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookRefused("must be an http:// or https:// URL with a host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise WebhookRefused("has an invalid port") from exc
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise WebhookRefused(f"host {parts.hostname!r} does not resolve") from exc
    # Every address: a name with one public and one private address could be sent to either.
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if not address.is_global or address.is_multicast:
            raise WebhookRefused(f"host {parts.hostname!r} resolves to a non-public address ({address})")


def parse_events_filter(values: list[str] | None) -> frozenset[str]:
    """The events asked for (default: all); ValueError names an unknown one."""
    if not values:
        return frozenset(WEBHOOK_EVENTS)
    unknown = sorted(set(values) - set(WEBHOOK_EVENTS))
    if unknown:
        raise ValueError(f"unknown event(s) {', '.join(unknown)}; choose from {', '.join(WEBHOOK_EVENTS)}")
    return frozenset(values)


def sign(secret: str, webhook_id: str, timestamp: int, body: str) -> str:
    """The Standard Webhooks signature header value: v1,base64(HMAC-SHA256(secret, id.timestamp.body))."""
    message = f"{webhook_id}.{timestamp}.{body}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(secret: str, headers: dict[str, str], body: str) -> bool:
    """A receiver's check: does any v1 signature in the header match? (Also check the timestamp's age.)"""
    expected = sign(secret, headers["webhook-id"], int(headers["webhook-timestamp"]), body)
    return any(hmac.compare_digest(expected, candidate) for candidate in headers["webhook-signature"].split())


def webhook_id(job_id: str, event: str, iteration: int) -> str:
    """The delivery's id, the same on every retry, so a receiver can drop duplicates."""
    return f"{job_id}:{event}:{iteration}"


def payload(job: Job, event: str, iteration: int, base_url: str) -> str:
    """The JSON body: the event type and a compact job (id, status, progress, error, urls)."""
    self_url = f"{base_url.rstrip('/')}/v1/jobs/{job.id}"
    urls = {"self": self_url, "events": f"{self_url}/events"}
    if job.output_key:
        urls["output"] = f"{self_url}/output"
    body: dict[str, Any] = {
        "type": event,
        "job": {
            "id": job.id,
            "status": job.status,
            "progress": {"iteration": job.iteration, "iterations": job.iterations},
            "error": job_error(job),
            "urls": urls,
        },
    }
    if event == "snapshot":
        body["iteration"] = iteration
        body["url"] = f"{self_url}/intermediates/{iteration}"
    return json.dumps(body, separators=(",", ":"), sort_keys=True)


def job_error(job: Job) -> dict[str, str] | None:
    """The job JSON's `error` object, or None; webhooks and the event stream carry it alike."""
    return {"code": job.error_code, "message": job.error_message or ""} if job.error_code else None


def webhook_target(job: Job) -> WebhookTarget | None:
    """The job's webhook, if it has one."""
    if not job.webhook_url:
        return None
    return WebhookTarget(job.webhook_url, parse_events_filter(job.webhook_events))


@functools.cache
def _sender(broker_url: str) -> Celery:
    from shared.celery_app import make_celery
    from shared.settings import get_settings

    # One app per process and broker, made on first use (after any fork), never at import.
    return make_celery(get_settings(broker_url=broker_url))


def notify(settings: Settings, target: WebhookTarget | None, job_id: str, event: str, iteration: int = 0) -> None:
    """Enqueue one delivery if the job wants this event; never raises, never waits on the receiver."""
    from shared.task_names import WEBHOOK_QUEUE, WEBHOOK_TASK

    if target is None or event not in target.events:
        return
    try:
        _sender(settings.resolved_broker_url()).send_task(
            WEBHOOK_TASK, args=[job_id, event, iteration], queue=WEBHOOK_QUEUE, retry=True, retry_policy=FAIL_FAST
        )
    except Exception as exc:  # a broker outage costs this event, never the job
        log.warning("job %s: webhook %s not enqueued (%s)", job_id, event, exc)
