"""Crafted headers, cursors and query values: whatever fails to parse is a 4xx, never a 5xx or a cut stream.

The named cases are the ones found by hand; the Hypothesis properties throw arbitrary strings at
each value the API parses (header values as a server delivers them: latin-1 text without CR/LF).
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from impasto.shared.status import JobStatus
from tests.api.conftest import Images, WorkerActions, keyed_client

JOB_ID = "0b9f6c1e-3a57-4a0e-9f6e-2f1d7c6b5a49"
# Examples per property: enough to find a parse that raises, few enough for a loaded 2-core machine.
EXAMPLES = 60
HYPOTHESIS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples every run: a failure is reproducible
    database=None,  # no .hypothesis folder in the working tree
    suppress_health_check=list(HealthCheck),
)
# A header value as a WSGI server hands it over: any latin-1 text without line breaks.
HEADER_TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=255, exclude_characters="\r\n"), max_size=80)
# Strings near what the parsers expect, so examples reach past the first check.
NEAR_IDS = st.one_of(
    HEADER_TEXT,
    st.from_regex(r"\A[0-9²³¹]{1,25}(-[0-9²³¹]{1,25})?\Z"),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
)


def cursor_of(payload: Any) -> str:
    """A cursor token wrapping any JSON payload, as encode_cursor wraps its own."""
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()


def finished_job(app: Flask, client: FlaskClient, images: Images) -> str:
    """A succeeded job of the client's key, whose stream ends by itself."""
    data = {"content": (io.BytesIO(images.jpeg), "c.jpg"), "style": [(io.BytesIO(images.png), "s.png")]}
    job_id: str = client.post("/v1/jobs", data=data, content_type="multipart/form-data").get_json()["id"]
    actions = WorkerActions(app, images.png)
    actions.claim(job_id)
    actions.finish(job_id, JobStatus.SUCCEEDED)
    return job_id


def assert_refused(response: Any, status: int) -> None:
    """A JSON error with the given status."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert set(response.get_json()["error"]) >= {"code", "message"}


@pytest.mark.parametrize(
    "cursor",
    [
        cursor_of(["0001-01-01T00:00:00+14:00", JOB_ID]),  # year 1 at UTC+14 is before year 1 in UTC
        cursor_of(["9999-12-31T23:59:59-14:00", JOB_ID]),
        base64.urlsafe_b64encode(b"[" * 2500).decode(),  # deeper than the JSON parser recurses
        "٣",
    ],
)
def test_crafted_cursors_are_422(app: Flask, client: FlaskClient, cursor: str) -> None:
    """Cursors the API never issued, whose decoding used to raise past ValueError, are refused."""
    assert_refused(client.get("/v1/jobs", query_string={"cursor": cursor}), 422)


def test_an_empty_cursor_is_the_first_page(client: FlaskClient) -> None:
    """`?cursor=` is any string to the schema: the server reads it as no cursor yet."""
    response = client.get("/v1/jobs?cursor=")
    assert response.status_code == 200 and response.get_json() == {"jobs": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("redis_mode", "last_event_id"),
    [
        (False, "²"),  # str.isdigit() says yes, int() says no
        (False, "١٢"),
        (False, "9" * 40),
        (True, "99999999999999999999-0"),  # past 64 bits: Redis refuses it mid-stream
        (True, "18446744073709551616-0"),
        (True, "0-18446744073709551616"),
        (True, "١-١"),  # \d matches these, Redis does not
        (True, "not-an-id"),
    ],
)
def test_crafted_last_event_ids_are_400(
    make_app: Callable[..., Flask], images: Images, redis_mode: bool, last_event_id: str
) -> None:
    """A Last-Event-ID the stream never sent is a 400 before the stream opens, in either mode."""
    app = make_app() if redis_mode else make_app(broker_url=None)
    client = keyed_client(app)
    job_id = finished_job(app, client, images)
    assert_refused(client.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": last_event_id}), 400)


def test_the_largest_redis_id_is_accepted(app: Flask, client: FlaskClient, images: Images) -> None:
    """The edge of the range is still an id: the stream runs to its end."""
    job_id = finished_job(app, client, images)
    response = client.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": f"{2**64 - 1}-{2**64 - 1}"})
    assert response.status_code == 200 and "event: completed" in response.get_data(as_text=True)


@pytest.mark.parametrize("redis_mode", [True, False], ids=["redis", "polled"])
def test_any_last_event_id_is_a_stream_or_a_400(
    make_app: Callable[..., Flask], images: Images, redis_mode: bool
) -> None:
    """Property: a finished job's stream with any Last-Event-ID is 400, or 200 running to `completed`."""
    app = make_app() if redis_mode else make_app(broker_url=None)
    client = keyed_client(app)
    job_id = finished_job(app, client, images)

    @given(value=NEAR_IDS)
    @HYPOTHESIS
    def check(value: str) -> None:
        response = client.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": value})
        assert response.status_code in (200, 400), (value, response.status_code)
        if response.status_code == 200:
            assert response.get_data(as_text=True).rstrip().endswith("}"), "the stream was cut"
            assert "event: completed" in response.get_data(as_text=True)

    check()


def test_any_list_query_is_a_page_or_a_422(app: Flask, client: FlaskClient) -> None:
    """Property: arbitrary cursor, status and limit values (and cursor-like tokens) answer 200 or 422."""
    values = st.one_of(st.text(max_size=60), NEAR_IDS)
    cursors = st.one_of(values, st.tuples(st.text(max_size=40), st.text(max_size=40)).map(cursor_of))

    @given(cursor=st.none() | cursors, status=st.none() | values, limit=st.none() | values)
    @HYPOTHESIS
    def check(cursor: str | None, status: str | None, limit: str | None) -> None:
        query = {k: v for k, v in {"cursor": cursor, "status": status, "limit": limit}.items() if v is not None}
        response = client.get("/v1/jobs", query_string=query)
        assert response.status_code in (200, 422), (query, response.status_code)

    check()


def test_any_authorization_is_served_or_a_401(make_app: Callable[..., Flask]) -> None:
    """Property: any Authorization header value is a 401 (or served, for a real key), never a 5xx."""
    app = make_app(failed_auth_limit="100000 per minute")
    client = app.test_client()

    @given(
        value=st.one_of(HEADER_TEXT, HEADER_TEXT.map(lambda t: f"Bearer {t}"), HEADER_TEXT.map("Bearer imp_".__add__))
    )
    @HYPOTHESIS
    def check(value: str) -> None:
        response = client.get("/v1/jobs", headers={"Authorization": value})
        assert response.status_code == 401, (value, response.status_code)

    check()


def test_any_prefer_and_idempotency_key_is_accepted_or_a_400(make_app: Callable[..., Flask], images: Images) -> None:
    """Property: a submission with arbitrary Prefer and Idempotency-Key headers is 201/202 or a 400."""
    app = make_app(max_active_jobs=100_000, rate_limit="100000 per minute", prefer_wait_max_s=0.05)
    client = keyed_client(app)

    @given(prefer=st.none() | HEADER_TEXT | HEADER_TEXT.map("wait=".__add__), idempotency_key=st.none() | HEADER_TEXT)
    @settings(parent=HYPOTHESIS, max_examples=EXAMPLES // 2)  # each example is a whole submission
    def check(prefer: str | None, idempotency_key: str | None) -> None:
        headers = {k: v for k, v in {"Prefer": prefer, "Idempotency-Key": idempotency_key}.items() if v is not None}
        data = {"content": (io.BytesIO(images.jpeg), "c.jpg"), "style": [(io.BytesIO(images.png), "s.png")]}
        response = client.post("/v1/jobs", data=data, content_type="multipart/form-data", headers=headers)
        assert response.status_code in (201, 202, 400, 409), (headers, response.status_code)

    check()
