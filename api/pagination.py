"""The job list's query string and its opaque cursors (base64url of the last item's position)."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from impasto.shared.jobs import as_utc
from impasto.shared.status import JobStatus

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def is_uuid(text: str) -> bool:
    """True for the canonical form of a UUID, as job ids are written."""
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


def encode_cursor(created_at: datetime, job_id: str) -> str:
    """An opaque token for the position just after the job (created_at, id)."""
    moment = as_utc(created_at)
    assert moment is not None
    raw = json.dumps([moment.astimezone(UTC).isoformat(), job_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


def decode_cursor(token: str) -> tuple[datetime, str]:
    """The (created_at, id) inside a token; ValueError if the API did not issue it."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        created_text, job_id = json.loads(raw)
        created_at = datetime.fromisoformat(created_text)
        if created_at.tzinfo is None or not isinstance(job_id, str) or not is_uuid(job_id):
            raise ValueError("not a cursor this API issued")
        # A moment near year 1 or 9999 with an offset leaves datetime's range once in UTC; deeply
        # nested JSON (a few KB of "[") exhausts the parser's recursion: both are just foreign tokens.
        return created_at.astimezone(UTC), job_id
    except (binascii.Error, UnicodeDecodeError, TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise ValueError("not a cursor this API issued") from exc


class ListQuery(BaseModel):
    """Query parameters of GET /v1/jobs."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    status: JobStatus | None = Field(None, description="only jobs in this status")
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="jobs per page")
    cursor: str | None = Field(None, description="next_cursor of the previous page")

    @field_validator("cursor", mode="before")
    @classmethod
    def _empty_is_first_page(cls, value: object) -> object:
        # `?cursor=` is what a client sends for "no cursor yet" (the schema allows any string).
        return None if value == "" else value

    @field_validator("cursor")
    @classmethod
    def _issued_by_us(cls, value: str | None) -> str | None:
        if value is not None:
            decode_cursor(value)
        return value

    def position(self) -> tuple[datetime, str] | None:
        """The (created_at, id) to continue after, or None for the first page."""
        return decode_cursor(self.cursor) if self.cursor is not None else None
