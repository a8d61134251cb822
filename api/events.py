"""GET /v1/jobs/{id}/events: a job's live events as Server-Sent Events (the Redis relay here; the
SQL-polled stream in api/polled_events.py, the messages and job reads in api/event_messages.py).

With a Redis broker the stream relays the job's Redis stream (impasto.shared.events), and the SSE ids
are the Redis entry ids, so a client that reconnects with Last-Event-ID continues with XREAD
after the last entry it saw, losing nothing. Without Redis (the embedded set-up) the stream
polls SQL and derives the events from row changes; a client that reconnects there finds what it
missed (snapshots included) in the opening `status` event's job JSON, not replayed one by one.
"""

from __future__ import annotations

import json
import re
import time
import weakref
from collections.abc import Iterator
from typing import Any, Literal

import redis
from flask import Blueprint, Response, request, stream_with_context
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from impasto.api.auth import current_key_id
from impasto.api.context import Impasto, close_db_session, current_impasto
from impasto.api.errors import ApiError, validation_details
from impasto.api.event_messages import KeyWatch, heartbeat, is_finished, key_revoked_event, read_job, snapshot_url, sse
from impasto.api.held_requests import Refusal
from impasto.api.jobs import find_job
from impasto.api.openapi import documented
from impasto.api.polled_events import polled_events
from impasto.api.schemas import ErrorBody
from impasto.shared.events import redis_url_for_events, stream_key
from impasto.shared.status import JobStatus

bp = Blueprint("events", __name__, url_prefix="/v1/jobs")

# Ids as this API issues them, ASCII digits only (str.isdigit and \d also take other scripts' digits).
REDIS_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")
MAX_REDIS_ID_PART = 2**64 - 1
LAST_REDIS_ID = f"{MAX_REDIS_ID_PART}-{MAX_REDIS_ID_PART}"
POLLED_ID = re.compile(r"[0-9]{1,18}")
Entries = list[tuple[str, dict[str, str]]]  # (entry id, fields), as decode_responses gives them
STREAMS_FULL_RETRY_AFTER_S = 5
XREAD_BLOCK_MS = 1000  # how long one XREAD waits; bounds how late a heartbeat or SQL check is


class EventsQuery(BaseModel):
    """Query parameters of GET /v1/jobs/{id}/events."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    from_: Literal["start"] | None = Field(
        None,
        alias="from",
        description="start: after the opening status, replay the job's retained events from its first (with a "
        "Redis broker, kept an hour after the job ends), so a late watcher can draw the whole loss curve; "
        "a Last-Event-ID header takes precedence",
    )


@bp.get("/<job_id>/events")
@documented(
    responses={
        200: "text/event-stream", 400: ErrorBody, 404: ErrorBody, 422: ErrorBody, 429: ErrorBody, 503: ErrorBody
    },
    query=EventsQuery,
)  # fmt: skip
def job_events(job_id: str) -> Response:
    """The job's events as text/event-stream: status, progress, snapshot, then completed."""
    try:
        query = EventsQuery.model_validate(request.args.to_dict())
    except ValidationError as exc:
        details = validation_details(exc, root="query")
        message = "invalid query: " + "; ".join(f"{d['field']}: {d['message']}" for d in details)
        raise ApiError(422, "invalid_query", message, details) from exc
    job_id = find_job(job_id).id  # 404 for another key's job, before anything is streamed
    # The stream reads SQL in short sessions of its own: a request session held for minutes
    # would pin a pooled connection per watcher.
    close_db_session()
    impasto = current_impasto()
    redis_url = redis_url_for_events(impasto.settings)
    last_event_id = read_last_event_id(redis_mode=redis_url is not None)
    key_id = current_key_id()
    refusal = impasto.held_requests.try_acquire(key_id)
    if refusal is Refusal.KEY_FULL:
        raise ApiError(
            429,
            "too_many_streams",
            f"this API key already holds {impasto.settings.max_held_requests_per_key} event streams or waiting"
            " submissions on this API process; close one, or poll GET /v1/jobs/{id}",
            headers={"Retry-After": str(STREAMS_FULL_RETRY_AFTER_S)},
        )
    if refusal is Refusal.PROCESS_FULL:
        raise ApiError(
            503,
            "too_many_streams",
            f"this API process already serves {impasto.settings.max_event_streams} event streams; retry later,"
            " or poll GET /v1/jobs/{id}",
            headers={"Retry-After": str(STREAMS_FULL_RETRY_AFTER_S)},
        )
    key_watch = KeyWatch(impasto, key_id)
    if redis_url is not None:
        from_start = query.from_ == "start" and not last_event_id
        events = redis_events(impasto, redis_url, job_id, last_event_id, key_watch, from_start)
    else:
        events = polled_events(impasto, job_id, last_event_id, key_watch)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy buffering (nginx)
    response = Response(stream_with_context(events), mimetype="text/event-stream", headers=headers)
    # The server closes every response it sent, streamed to the end or cut by the client; a response
    # that is never sent (replaced by an error after this view) gives its slot back when it is collected.
    release = impasto.held_requests.release_once(key_id)
    response.call_on_close(release)
    weakref.finalize(response, release)
    return response


def read_last_event_id(redis_mode: bool) -> str:
    """The Last-Event-ID header if it is an id this stream issues ("" when absent); a 400 otherwise."""
    value = request.headers.get("Last-Event-ID", "").strip()
    if not value:
        return ""
    if redis_mode:
        match = REDIS_ID.fullmatch(value)
        # Redis refuses an id part past 64 bits, which would cut the stream after its 200.
        if match is not None and all(int(part) <= MAX_REDIS_ID_PART for part in match.groups()):
            return value
    elif POLLED_ID.fullmatch(value):
        return value
    raise ApiError(400, "bad_request", "Last-Event-ID is not the id of an event this stream sent")


def redis_events(
    impasto: Impasto, url: str, job_id: str, last_event_id: str, key_watch: KeyWatch, from_start: bool = False
) -> Iterator[str]:
    """Relay the job's Redis stream from after `last_event_id`, or from now after the SQL state (from its first
    entry after the SQL state, with `from_start`)."""
    settings = impasto.settings
    # Its own connection: a blocking XREAD holds one for its whole wait.
    client = redis.Redis.from_url(url, socket_timeout=XREAD_BLOCK_MS / 1000 + 5, decode_responses=True)
    try:
        key = stream_key(job_id)
        if last_event_id:
            cursor = last_event_id
        elif from_start:
            cursor = "0-0"  # the id before any entry: everything retained comes after the status
        else:
            # The newest entry *before* reading SQL: anything later is relayed, so there is no gap
            # (an event already in the SQL state may come again, which is harmless).
            newest: Entries = client.xrevrange(key, count=1)  # type: ignore[assignment]
            cursor = newest[0][0] if newest else "0-0"
        job = read_job(impasto, job_id)
        if job is None:
            return
        # On a resume the state carries no id: the client's Last-Event-ID stays where it was.
        yield sse("status", {"status": job["status"], "job": job}, None if cursor == last_event_id else cursor)
        if is_finished(job):
            yield from relay_entries(entries_after(client, key, cursor), job_id)
            yield sse("completed", job)
            return
        last_beat = last_check = time.monotonic()
        finished = False  # a final status was relayed; SQL may commit it a moment later
        while True:
            found: list[tuple[str, Entries]] = client.xread({key: cursor}, block=XREAD_BLOCK_MS, count=100)  # type: ignore[assignment]
            for _key, entries in found:
                for entry_id, fields in entries:
                    cursor = entry_id
                    event, data = fields.get("event", ""), json.loads(fields.get("data", "{}"))
                    yield relay(event, data, entry_id, job_id)
                    finished = finished or (event == "status" and JobStatus(data.get("status", "queued")).finished)
            if key_watch.revoked():
                yield key_revoked_event()
                return
            now = time.monotonic()
            if now - last_beat >= settings.sse_heartbeat_s:
                last_beat = now
                yield heartbeat()
            if finished or now - last_check >= settings.sse_sql_check_s:
                # SQL is the truth: a lost final event (publish failed, stream expired) still ends
                # the stream, with the job as SQL has it.
                last_check = now
                job = read_job(impasto, job_id)
                if job is None:
                    return
                if is_finished(job):
                    yield from relay_entries(entries_after(client, key, cursor), job_id)
                    yield sse("completed", job)
                    return
    finally:
        client.close()


def entries_after(client: redis.Redis, key: str, cursor: str) -> Entries:
    """Stream entries after `cursor` (exclusive)."""
    if cursor == LAST_REDIS_ID:  # nothing comes after it, and Redis refuses it as an exclusive start
        return []
    entries: Entries = client.xrange(key, min=f"({cursor}")  # type: ignore[assignment]
    return entries


def relay_entries(entries: Entries, job_id: str) -> Iterator[str]:
    """SSE messages of stream entries not yet relayed."""
    for entry_id, fields in entries:
        yield relay(fields.get("event", ""), json.loads(fields.get("data", "{}")), entry_id, job_id)


def relay(event: str, data: dict[str, Any], entry_id: str, job_id: str) -> str:
    """One stream entry as SSE; a snapshot gains the URL of its image."""
    if event == "snapshot" and "iteration" in data:
        data = {**data, "url": snapshot_url(job_id, int(data["iteration"]))}
    return sse(event, data, entry_id)
