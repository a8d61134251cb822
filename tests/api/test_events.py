"""GET /v1/jobs/{id}/events: the Redis-fed stream (events XADDed as a worker does) and the
SQL-polling fallback of the embedded set-up, read message by message as the server yields them."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from impasto.shared.api_keys import revoke_key
from impasto.shared.events import EventPublisher
from impasto.shared.jobs import owned_update
from impasto.shared.status import JobStatus
from tests.api.conftest import REDIS_URL, WORKER_NAME, Submit, WorkerActions, add_key, impasto_of, keyed_client


@dataclass
class Message:
    """One parsed SSE message."""

    event: str
    data: dict[str, Any]
    id: str | None


class Stream:
    """An open event stream, read one message at a time."""

    def __init__(self, response: TestResponse) -> None:
        self.response = response
        self.chunks: Iterator[bytes] = iter(response.response)  # type: ignore[arg-type]

    def next(self) -> Message:
        """The next message, skipping heartbeats."""
        while True:
            text = next(self.chunks)
            text = text.decode() if isinstance(text, bytes) else text
            fields = dict(line.split(": ", 1) for line in text.strip().splitlines() if not line.startswith(":"))
            if fields:
                return Message(fields["event"], json.loads(fields["data"]), fields.get("id"))

    def rest(self) -> list[Message]:
        """Every message until the stream ends."""
        messages = []
        while True:
            try:
                messages.append(self.next())
            except StopIteration:
                return messages


@pytest.fixture
def open_stream(client: FlaskClient) -> Iterator[Callable[..., Stream]]:
    """Open event streams (closed after the test)."""
    streams: list[Stream] = []

    def connect(
        job_id: str, last_event_id: str | None = None, with_client: FlaskClient | None = None, query: str = ""
    ) -> Stream:
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        response = (with_client or client).get(f"/v1/jobs/{job_id}/events{query}", headers=headers, buffered=False)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.mimetype == "text/event-stream"
        stream = Stream(response)
        streams.append(stream)
        return stream

    yield connect
    for stream in streams:
        stream.response.close()


@pytest.fixture
def publisher() -> Iterator[EventPublisher]:
    """Publishes into the API tests' Redis, as a worker does."""
    events = EventPublisher(redis.Redis.from_url(REDIS_URL))
    yield events
    events.close()


def progress_update(app: Flask, job_id: str, iteration: int) -> None:
    """Write progress as the worker's throttled SQL write does."""
    with impasto_of(app).sessions() as session:
        losses = {"content": 1.0, "style": 2.0, "tv": 0.1, "total": 3.1}
        assert owned_update(session, job_id, WORKER_NAME, iteration=iteration, losses=losses, eta_seconds=4.0)


def test_redis_stream_relays_events_and_resumes(
    submit: Submit, worker_actions: WorkerActions, publisher: EventPublisher, open_stream: Callable[..., Stream]
) -> None:
    """State first, then the worker's events with Redis ids; Last-Event-ID resumes without gaps."""
    job_id = submit().get_json()["id"]
    stream = open_stream(job_id)
    first = stream.next()
    assert (first.event, first.data["status"], first.data["job"]["id"]) == ("status", "queued", job_id)
    worker_actions.claim(job_id)
    publisher.publish(job_id, "status", {"status": "running", "worker": WORKER_NAME, "attempt": 1})
    publisher.publish(job_id, "progress", {"iteration": 5, "iterations": 20, "percent": 25.0})
    worker_actions.snapshot(job_id, 5)
    publisher.publish(job_id, "snapshot", {"iteration": 5})
    running, progress, snapshot = stream.next(), stream.next(), stream.next()
    assert [m.event for m in (running, progress, snapshot)] == ["status", "progress", "snapshot"]
    assert running.data["status"] == "running" and progress.data["iteration"] == 5
    assert snapshot.data["url"].endswith(f"/v1/jobs/{job_id}/intermediates/5")
    ids = [m.id for m in (running, progress, snapshot)]
    assert all(ids) and ids == sorted(ids, key=lambda i: tuple(map(int, str(i).split("-"))))
    stream.response.close()

    # Reconnect after the progress event: the snapshot comes again, then whatever follows.
    resumed = open_stream(job_id, last_event_id=progress.id)
    state = resumed.next()
    assert (state.event, state.id, state.data["status"]) == ("status", None, "running")
    again = resumed.next()
    assert (again.event, again.id) == ("snapshot", snapshot.id)
    worker_actions.finish(job_id, JobStatus.SUCCEEDED)
    publisher.publish(job_id, "status", {"status": "succeeded"})
    tail = resumed.rest()
    assert [m.event for m in tail] == ["status", "completed"]
    assert tail[0].data["status"] == "succeeded"
    assert tail[1].data["status"] == "succeeded" and tail[1].data["outputs"]["final"]


def test_redis_stream_ends_from_sql_when_the_final_event_is_lost(
    make_app: Callable[..., Flask], images: Any, open_stream: Callable[..., Stream]
) -> None:
    """A job that ends without its final event still gets `completed`, from SQL."""
    app = make_app(sse_sql_check_s=0.1)
    client = keyed_client(app)
    actions = WorkerActions(app, images.png)
    job_id = submit_with(client, images)
    stream = open_stream(job_id, with_client=client)
    assert stream.next().data["status"] == "queued"
    actions.claim(job_id)
    actions.finish(job_id, JobStatus.FAILED, error_code="engine_error", error_message="boom")
    completed = stream.next()
    assert (completed.event, completed.data["status"]) == ("completed", "failed")


def submit_with(client: FlaskClient, images: Any) -> str:
    """Submit a job with `client`; its id."""
    data = {"content": (io.BytesIO(images.jpeg), "c.jpg"), "style": [(io.BytesIO(images.png), "s.png")]}
    response = client.post("/v1/jobs", data=data, content_type="multipart/form-data")
    assert response.status_code == 202, response.get_data(as_text=True)
    job_id: str = response.get_json()["id"]
    return job_id


def test_finished_job_answers_state_and_completed_at_once(
    submit: Submit, worker_actions: WorkerActions, open_stream: Callable[..., Stream]
) -> None:
    """A finished job's stream is its state and `completed`, then it ends."""
    job_id = submit().get_json()["id"]
    worker_actions.claim(job_id)
    worker_actions.finish(job_id, JobStatus.SUCCEEDED)
    messages = open_stream(job_id).rest()
    assert [(m.event, m.data["status"]) for m in messages] == [("status", "succeeded"), ("completed", "succeeded")]


def test_from_start_replays_a_finished_jobs_history(
    submit: Submit, worker_actions: WorkerActions, publisher: EventPublisher, open_stream: Callable[..., Stream]
) -> None:
    """?from=start: the state, then every retained event of the job (the loss curve of a job opened late),
    then completed; without it a finished job's stream is its state and completed only."""
    job_id = submit().get_json()["id"]
    worker_actions.claim(job_id)
    publisher.publish(job_id, "status", {"status": "running", "worker": WORKER_NAME, "attempt": 1})
    for iteration, total in ((1, 9.0), (2, 5.0), (3, 4.0)):
        publisher.publish(job_id, "progress", {"iteration": iteration, "iterations": 3, "loss": {"total": total}})
    worker_actions.finish(job_id, JobStatus.SUCCEEDED)
    publisher.publish(job_id, "status", {"status": "succeeded"})
    messages = open_stream(job_id, query="?from=start").rest()
    expected = ["status", "status", "progress", "progress", "progress", "status", "completed"]
    assert [m.event for m in messages] == expected
    assert messages[0].data["status"] == "succeeded" and messages[0].id == "0-0"
    assert [m.data["loss"]["total"] for m in messages if m.event == "progress"] == [9.0, 5.0, 4.0]
    # A Last-Event-ID takes precedence: only what came after it.
    resumed = open_stream(job_id, last_event_id=messages[3].id, query="?from=start").rest()
    assert [m.event for m in resumed] == ["status", "progress", "status", "completed"]
    assert [m.event for m in open_stream(job_id).rest()] == ["status", "completed"]


def test_from_takes_only_start(client: FlaskClient, submit: Submit) -> None:
    """Another value of ?from= is a 422 that names the parameter."""
    job_id = submit().get_json()["id"]
    response = client.get(f"/v1/jobs/{job_id}/events?from=yesterday")
    assert response.status_code == 422
    assert response.get_json()["error"]["details"][0]["field"] == "from"


def test_sql_polling_fallback(make_app: Callable[..., Flask], images: Any, open_stream: Callable[..., Stream]) -> None:
    """Without Redis, events come from row changes, with increasing integer ids."""
    app = make_app(broker_url=None, sse_poll_s=0.02)
    client = keyed_client(app)
    actions = WorkerActions(app, images.png)
    job_id = submit_with(client, images)
    stream = open_stream(job_id, with_client=client)
    messages = [stream.next()]
    actions.claim(job_id)
    messages.append(stream.next())
    progress_update(app, job_id, 5)
    messages.append(stream.next())
    actions.snapshot(job_id, 5)
    messages.append(stream.next())
    actions.finish(job_id, JobStatus.SUCCEEDED)
    messages += stream.rest()
    assert [m.event for m in messages] == ["status", "status", "progress", "snapshot", "status", "completed"]
    assert [m.data.get("status") for m in messages if m.event == "status"] == ["queued", "running", "succeeded"]
    assert messages[2].data["iteration"] == 5 and messages[2].data["eta_seconds"] == 4.0
    assert messages[3].data["url"].endswith("/intermediates/5")
    assert [int(str(m.id)) for m in messages] == list(range(1, 7))
    # A reconnect continues the numbering.
    resumed = open_stream(job_id, last_event_id="6", with_client=client).rest()
    assert [(m.event, m.id) for m in resumed] == [("status", "7"), ("completed", "8")]


@pytest.mark.parametrize("broker", ["redis", "sql"])
def test_snapshot_urls_start_with_impasto_url_whatever_the_host_header(
    make_app: Callable[..., Flask], images: Any, publisher: EventPublisher, broker: str
) -> None:
    """With IMPASTO_URL set, a snapshot event's URL is on it, never on a crafted Host header."""
    polling = {"broker_url": None, "sse_poll_s": 0.02} if broker == "sql" else {}
    app = make_app(url="https://impasto.example.com", **polling)
    client = keyed_client(app)
    actions = WorkerActions(app, images.png)
    job_id = submit_with(client, images)
    response = client.get(f"/v1/jobs/{job_id}/events", headers={"Host": "evil.example:666"}, buffered=False)
    stream = Stream(response)
    messages = [stream.next()]
    actions.claim(job_id)
    actions.snapshot(job_id, 5)
    if broker == "redis":
        publisher.publish(job_id, "snapshot", {"iteration": 5})
    while not any(m.event == "snapshot" for m in messages):
        messages.append(stream.next())
    response.close()
    snapshots = [m.data["url"] for m in messages if m.event == "snapshot"]
    assert snapshots == [f"https://impasto.example.com/v1/jobs/{job_id}/intermediates/5"]
    assert "evil" not in json.dumps([m.data for m in messages])


def test_another_keys_job_is_not_found(app: Flask, submit: Submit) -> None:
    """Key B cannot watch key A's job, nor a job that does not exist; no key is a 401."""
    job_id = submit().get_json()["id"]
    other = keyed_client(app, add_key(app, "key-b"))
    for url in (f"/v1/jobs/{job_id}/events", "/v1/jobs/00000000-0000-4000-8000-000000000000/events"):
        response = other.get(url)
        assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"
    assert app.test_client().get(f"/v1/jobs/{job_id}/events").status_code == 401


def test_event_streams_per_process_are_capped(make_app: Callable[..., Flask], images: Any) -> None:
    """Past max_event_streams open streams the next one is a 503 with Retry-After; a closed stream frees its slot.

    Each stream holds a server thread for minutes: the cap keeps threads free for other requests (and /readyz).
    """
    app = make_app(max_event_streams=2)
    client = keyed_client(app)
    job_id = submit_with(client, images)
    opened = [client.get(f"/v1/jobs/{job_id}/events", buffered=False) for _ in range(2)]
    assert [r.status_code for r in opened] == [200, 200]
    refused = client.get(f"/v1/jobs/{job_id}/events")
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
    assert refused.get_json()["error"]["code"] == "too_many_streams"
    assert client.get(f"/v1/jobs/{job_id}").status_code == 200, "other requests are still served"
    opened.pop().close()
    again = client.get(f"/v1/jobs/{job_id}/events", buffered=False)
    assert again.status_code == 200
    for response in (again, *opened):  # last opened, first closed: the test client nests their contexts
        response.close()


@pytest.mark.parametrize("redis_mode", [True, False], ids=["redis", "polled"])
def test_a_revoked_keys_stream_ends_within_seconds(
    make_app: Callable[..., Flask], images: Any, open_stream: Callable[..., Stream], redis_mode: bool
) -> None:
    """`impasto keys revoke` (impasto.shared.api_keys.revoke_key) ends the key's open streams at the next key check."""
    app = make_app() if redis_mode else make_app(broker_url=None)
    key = add_key(app, "to-revoke")
    client = keyed_client(app, key)
    job_id = submit_with(client, images)
    stream = open_stream(job_id, with_client=client)
    assert stream.next().data["status"] == "queued"
    with impasto_of(app).sessions() as session:
        assert revoke_key(session, key)[1]
    revoked_at = time.monotonic()
    rest = stream.rest()  # the job stays queued: only the revocation can end this stream
    waited = time.monotonic() - revoked_at
    assert [m.event for m in rest] == ["error"] and rest[0].data["error"]["code"] == "unauthorized"
    check_s = impasto_of(app).settings.sse_key_check_s
    assert waited < check_s + 8, f"the stream ran {waited:.1f} s past the revocation"
    stream.response.close()  # as the server does once the body ends
    assert impasto_of(app).held_requests.held() == 0, "the stream's slot is given back"
    assert client.get(f"/v1/jobs/{job_id}/events").status_code == 401


def test_one_key_holds_only_its_share_of_streams_and_waits(make_app: Callable[..., Flask], images: Any) -> None:
    """Past max_held_requests_per_key a key's next stream is a 429 and its Prefer: wait is answered at once;
    another key still streams, and a closed stream gives the key its slot back."""
    app = make_app(max_event_streams=10, max_held_requests_per_key=2, prefer_wait_max_s=30)
    first, second = keyed_client(app), keyed_client(app)
    job_id = submit_with(first, images)
    opened = [first.get(f"/v1/jobs/{job_id}/events", buffered=False) for _ in range(2)]
    assert [r.status_code for r in opened] == [200, 200]
    refused = first.get(f"/v1/jobs/{job_id}/events")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert refused.get_json()["error"]["code"] == "too_many_streams"
    data = {"content": (io.BytesIO(images.jpeg), "c.jpg"), "style": [(io.BytesIO(images.png), "s.png")]}
    started = time.monotonic()
    unheld = first.post("/v1/jobs", data=data, content_type="multipart/form-data", headers={"Prefer": "wait=30"})
    assert unheld.status_code == 202 and "Preference-Applied" not in unheld.headers
    assert time.monotonic() - started < 15, "the wait was held without a slot"
    other_job = submit_with(second, images)
    other = second.get(f"/v1/jobs/{other_job}/events", buffered=False)
    assert other.status_code == 200, "another key's stream is not refused"
    other.close()  # last opened, first closed: the test client nests their contexts
    opened.pop().close()
    again = first.get(f"/v1/jobs/{job_id}/events", buffered=False)
    assert again.status_code == 200
    for response in (again, *opened):
        response.close()
    assert impasto_of(app).held_requests.held() == 0
