"""What an event stream sends and reads: SSE messages, the key watch that ends a revoked key's
stream, and the job JSON read in a short session of its own."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy.orm import selectinload

from impasto.api.context import Impasto
from impasto.api.job_json import external_url, job_json
from impasto.shared.api_keys import key_is_active
from impasto.shared.models import Job
from impasto.shared.status import JobStatus


class KeyWatch:
    """Re-reads the stream's API key now and then (one primary-key lookup): a revoked key's stream ends."""

    def __init__(self, impasto: Impasto, key_id: str) -> None:
        self.impasto = impasto
        self.key_id = key_id
        self.checked = time.monotonic()  # the request was just authenticated

    def revoked(self) -> bool:
        """True once the key is revoked or gone; reads SQL at most every sse_key_check_s."""
        now = time.monotonic()
        if now - self.checked < self.impasto.settings.sse_key_check_s:
            return False
        self.checked = now
        with self.impasto.sessions() as session:
            return not key_is_active(session, self.key_id)


def key_revoked_event() -> str:
    """The last message of a stream whose key was revoked."""
    return sse("error", {"error": {"code": "unauthorized", "message": "this API key has been revoked"}})


def sse(event: str, data: dict[str, Any], event_id: str | None = None) -> str:
    """One SSE message (data is one JSON line, so it needs no splitting)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def heartbeat() -> str:
    """A comment line: keeps proxies from closing an idle stream, and finds a gone client."""
    return ": keepalive\n\n"


def read_job(impasto: Impasto, job_id: str) -> dict[str, Any] | None:
    """The job JSON from SQL in a short session of its own; None once the job is deleted."""
    with impasto.sessions() as session:
        job = session.get(Job, job_id, options=[selectinload(Job.snapshots)])
        return job_json(job) if job is not None else None


def is_finished(job: dict[str, Any]) -> bool:
    """True for succeeded, failed and canceled."""
    return JobStatus(job["status"]).finished


def snapshot_url(job_id: str, iteration: int) -> str:
    """The intermediate image of one snapshot."""
    return external_url("job_files.get_intermediate", job_id=job_id, iteration=iteration)
