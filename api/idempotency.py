"""Idempotency-Key for job submission: a retried request finds the job its first try made."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from impasto.shared.jobs import as_utc
from impasto.shared.models import IdempotencyKey, utcnow

MAX_KEY_LENGTH = 255


def request_fingerprint(
    content_key: str,
    style_keys: list[str],
    params: dict[str, Any],
    webhook: str | None = None,
    webhook_events: list[str] | None = None,
    masks: dict[str, Any] | None = None,
) -> str:
    """A hash of what a submission asks: its images (by content hash), its params, its webhook and its masks."""
    asked: dict[str, Any] = {"content": content_key, "styles": style_keys, "params": params}
    if webhook is not None:  # absent for a job without one, so older fingerprints still match
        asked |= {"webhook": webhook, "webhook_events": webhook_events}
    if masks is not None:  # likewise
        asked["masks"] = masks
    canonical = json.dumps(asked, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def find_key(session: Session, key: str) -> IdempotencyKey | None:
    """The live record of `key`; an expired one is deleted and treated as absent."""
    record = session.get(IdempotencyKey, key)
    if record is not None and as_utc(record.expires_at) <= utcnow():  # type: ignore[operator]
        session.execute(delete(IdempotencyKey).where(IdempotencyKey.key == key))
        session.flush()
        return None
    return record


def remember_key(session: Session, key: str, fingerprint: str, job_id: str, ttl_seconds: float) -> None:
    """Record `key` for a new job in the same transaction as the job (the caller commits)."""
    session.add(
        IdempotencyKey(
            key=key, request_hash=fingerprint, job_id=job_id, expires_at=utcnow() + timedelta(seconds=ttl_seconds)
        )
    )
