"""Cursor tokens of the job list."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import pytest

from impasto.api.pagination import ListQuery, decode_cursor, encode_cursor

JOB_ID = "0b9f6c1e-3a57-4a0e-9f6e-2f1d7c6b5a49"


def test_cursor_round_trip() -> None:
    """A token gives back the UTC position it was made from, naive input read as UTC."""
    moment = datetime(2026, 11, 28, 12, 0, 0, 123456)
    token = encode_cursor(moment, JOB_ID)
    assert "=" not in token
    assert decode_cursor(token) == (moment.replace(tzinfo=UTC), JOB_ID)
    shifted = moment.replace(tzinfo=timezone(timedelta(hours=2)))
    assert decode_cursor(encode_cursor(shifted, JOB_ID))[0] == moment.replace(tzinfo=UTC) - timedelta(hours=2)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "%%%",
        base64.urlsafe_b64encode(b"not json").decode(),
        base64.urlsafe_b64encode(b'["2026-01-01T00:00:00", "naive"]').decode(),
        base64.urlsafe_b64encode(b'["2026-01-01T00:00:00+00:00", 5]').decode(),
        base64.urlsafe_b64encode(b'{"a": 1}').decode(),
        base64.urlsafe_b64encode(b'["soon", "x"]').decode(),
        base64.urlsafe_b64encode(b'["2026-01-01T00:00:00+00:00", "not-a-uuid\\u0000"]').decode(),
    ],
)
def test_foreign_cursors_are_refused(token: str) -> None:
    """Anything the API did not issue is a ValueError."""
    with pytest.raises(ValueError, match="cursor"):
        decode_cursor(token)


def test_list_query_defaults() -> None:
    """No parameters: the first page of 20 of every status."""
    query = ListQuery.model_validate({})
    assert (query.status, query.limit, query.position()) == (None, 20, None)
