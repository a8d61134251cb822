"""The jobs resource: submit (and its validation), read, list with cursors, cancel, delete."""

from __future__ import annotations

import io
import json
import logging
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import func, select

from impasto.shared.job_params import JobParams
from impasto.shared.models import JobSnapshot, JobStatusChange
from impasto.shared.status import JobStatus
from impasto.shared.storage import job_prefix, upload_key
from impasto.shared.task_names import LARGE_QUEUE, SMALL_QUEUE, TRANSFER_QUEUE, TRANSFER_TASK
from tests.api.conftest import (
    DEAD_BROKER_URL,
    Images,
    Observed,
    Submit,
    WorkerActions,
    image_bytes,
    impasto_of,
    keyed_client,
)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk with its CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header that claims a size, with almost no pixel data behind it."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b""))
        + png_chunk(b"IEND", b"")
    )


def animated_png() -> bytes:
    """A two-frame APNG."""
    frames = [Image.new("RGB", (16, 16), color) for color in ("red", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, "PNG", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


def noisy_png() -> bytes:
    """A PNG that does not compress away, so a cut-off copy misses pixel data."""
    buffer = io.BytesIO()
    Image.effect_noise((128, 96), 64).convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


# Each case: the submit() arguments, then the expected status, error code and first detail field.
Case = tuple[Callable[[Images], dict[str, Any]], int, str, str | None]
INVALID_SUBMISSIONS: dict[str, Case] = {
    "missing content": (lambda i: {"content": None}, 400, "bad_request", None),
    "missing style": (lambda i: {"styles": []}, 400, "bad_request", None),
    "too many styles": (lambda i: {"styles": [i.png] * 5}, 422, "too_many_styles", None),
    "zero-byte content": (lambda i: {"content": b""}, 422, "invalid_image", "content"),
    "truncated png": (lambda i: {"content": noisy_png()[:600]}, 422, "invalid_image", "content"),
    "text named .png": (lambda i: {"styles": [b"not an image at all\n"]}, 422, "invalid_image", "style[0]"),
    "gif": (lambda i: {"styles": [i.png, image_bytes("GIF")]}, 415, "unsupported_format", "style[1]"),
    "animated png": (lambda i: {"content": animated_png()}, 415, "unsupported_format", "content"),
    "png claiming 100000x100000": (
        lambda i: {"content": png_claiming(100_000, 100_000)},
        422,
        "image_too_large",
        "content",
    ),
    "png claiming 8000x8000": (lambda i: {"content": png_claiming(8000, 8000)}, 422, "image_too_large", "content"),
    "params not json": (lambda i: {"params": "{iterations: 5"}, 400, "bad_request", None),
    "params not an object": (lambda i: {"params": "[1, 2]"}, 422, "invalid_params", "params"),
    "unknown param": (lambda i: {"params": {"iterations": 10, "bogus": 1}}, 422, "invalid_params", "bogus"),
    "NaN weight": (lambda i: {"params": '{"style_weight": NaN}'}, 422, "invalid_params", "style_weight"),
    "infinite weight": (lambda i: {"params": '{"tv_weight": Infinity}'}, 422, "invalid_params", "tv_weight"),
    "negative weight": (lambda i: {"params": {"content_weight": -1}}, 422, "invalid_params", "content_weight"),
    "iterations 0": (lambda i: {"params": {"iterations": 0}}, 422, "invalid_params", "iterations"),
    "iterations 10**9": (lambda i: {"params": {"iterations": 10**9}}, 422, "invalid_params", "iterations"),
    "unknown layer": (lambda i: {"params": {"content_layers": ["conv9_9"]}}, 422, "invalid_params", "content_layers.0"),
    "blend weights count": (
        lambda i: {"params": {"style_blend_weights": [1, 2]}},
        422,
        "invalid_params",
        "style_blend_weights",
    ),
}


def assert_nothing_changed(observed: Observed) -> None:
    """No row, no stored file, no queued message."""
    assert observed.job_count() == 0
    assert observed.stored_files() == []
    assert observed.broker.llen(TRANSFER_QUEUE) == 0


@pytest.mark.parametrize("case", INVALID_SUBMISSIONS.values(), ids=INVALID_SUBMISSIONS.keys())
def test_invalid_submission_changes_nothing(submit: Submit, observed: Observed, images: Images, case: Case) -> None:
    """Each bad request gets its status and code, and leaves no trace."""
    arguments, status, code, field = case
    response = submit(**arguments(images))
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == code
    assert error["message"]
    if field is not None:
        assert error["details"][0]["field"] == field
        assert error["details"][0]["message"]
    assert_nothing_changed(observed)


def test_oversized_body_is_413_json(make_app: Callable[..., Flask], submit: Submit, broker: redis.Redis) -> None:
    """A body over max_upload_bytes is refused before it is parsed."""
    app = make_app(max_upload_bytes=512)
    response = submit(with_client=keyed_client(app))
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "payload_too_large"
    assert_nothing_changed(Observed(app, broker))


def test_image_over_max_image_pixels(make_app: Callable[..., Flask], submit: Submit, broker: redis.Redis) -> None:
    """The pixel limit comes from settings."""
    app = make_app(max_image_pixels=64 * 48 - 1)
    response = submit(with_client=keyed_client(app))
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "image_too_large"
    assert_nothing_changed(Observed(app, broker))


def test_non_multipart_body_is_415(client: FlaskClient, observed: Observed) -> None:
    """A JSON body is not a job submission."""
    response = client.post("/v1/jobs", json={"content": "x"})
    assert response.status_code == 415
    assert response.get_json()["error"]["code"] == "unsupported_media_type"
    assert_nothing_changed(observed)


def test_two_content_files_are_refused(client: FlaskClient, images: Images, observed: Observed) -> None:
    """Exactly one content image."""
    data = {
        "content": [(io.BytesIO(images.jpeg), "a.jpg"), (io.BytesIO(images.jpeg), "b.jpg")],
        "style": (io.BytesIO(images.png), "s.png"),
    }
    response = client.post("/v1/jobs", data=data, content_type="multipart/form-data")
    assert response.status_code == 400
    assert_nothing_changed(observed)


@pytest.mark.parametrize(
    ("extra", "status", "code", "named"),
    [
        ({"iterations": "10"}, 422, "unknown_field", "iterations"),  # a param sent as its own field
        ({"webhooks": "https://93.184.215.14/h"}, 422, "unknown_field", "webhooks"),  # a typo
        ({"notes": (b"x", "notes.txt")}, 422, "unknown_field", "notes"),  # an unknown file part
        ({"webhook": (b"https://93.184.215.14/h", "hook.txt")}, 400, "bad_request", "webhook"),
        ({"style": "s.png"}, 400, "bad_request", "style"),  # text where a file belongs: never ignored
    ],
    ids=["param as a field", "typo", "unknown file", "webhook as a file", "style as text"],
)
def test_every_part_is_a_field_of_its_kind(
    client: FlaskClient, images: Images, observed: Observed, extra: dict[str, Any], status: int, code: str, named: str
) -> None:
    """The schema says additionalProperties: false; a part the form does not have is refused, naming it."""
    data = {"content": (io.BytesIO(images.jpeg), "c.jpg"), "style": [(io.BytesIO(images.png), "s.png")]}
    for name, value in extra.items():  # (bytes, filename): a file part
        part = (io.BytesIO(value[0]), value[1]) if isinstance(value, tuple) else value
        data[name] = [*data[name], part] if name in data else part  # type: ignore[list-item]
    response = client.post("/v1/jobs", data=data, content_type="multipart/form-data")
    assert response.status_code == status, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == code and repr(named) in error["message"]
    if code == "unknown_field":
        assert error["details"] == [{"field": named, "message": "not a field of this form"}]
    assert_nothing_changed(observed)


def test_create_job_stores_commits_then_enqueues(submit: Submit, observed: Observed, images: Images) -> None:
    """202 with the job JSON and Location; the row, the uploads and one message exist."""
    response = submit(styles=[images.png, images.webp], params={"iterations": 20, "size": 64})
    assert response.status_code == 202
    job = response.get_json()
    assert response.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] == "queued"
    assert job["params"] == JobParams.model_validate({"iterations": 20, "size": 64}).model_dump(mode="json")
    assert job["progress"] == {"iteration": 0, "iterations": 20, "percent": 0.0, "loss": None, "eta_seconds": None}

    row = observed.job(job["id"])
    assert row.status == JobStatus.QUEUED
    assert row.queue == TRANSFER_QUEUE
    assert row.content_key == upload_key(images.jpeg, "jpg")
    assert row.style_keys == [upload_key(images.png, "png"), upload_key(images.webp, "webp")]
    assert [change.status for change in row.history] == ["queued"]
    assert row.enqueued_at is not None
    assert observed.stored_files() == sorted([row.content_key, *row.style_keys])
    stored = impasto_of(observed.app).storage
    assert stored.get(row.content_key) == images.jpeg  # the original bytes, not a re-encoding

    (message,) = observed.queued()
    assert message["headers"]["task"] == TRANSFER_TASK
    assert job["id"] in message["headers"]["argsrepr"]
    assert observed.queued_job_ids() == [job["id"]]


def test_stored_extension_comes_from_the_bytes(submit: Submit, observed: Observed, images: Images) -> None:
    """PNG bytes uploaded as content.jpg are stored as .png."""
    response = submit(content=images.png)
    assert response.status_code == 202
    assert observed.job(response.get_json()["id"]).content_key == upload_key(images.png, "png")


def test_uploads_are_content_addressed(submit: Submit, observed: Observed, images: Images) -> None:
    """The same bytes are stored once, however often they are sent."""
    first = submit(styles=[images.png, images.png]).get_json()
    second = submit(styles=[images.png]).get_json()
    assert observed.job(first["id"]).style_keys == [upload_key(images.png, "png")] * 2
    assert observed.job(second["id"]).content_key == observed.job(first["id"]).content_key
    assert len(observed.stored_files()) == 2
    assert observed.queued_job_ids() == [second["id"], first["id"]]  # LPUSH: newest at the head


def test_an_upload_already_stored_is_written_again(submit: Submit, observed: Observed, images: Images) -> None:
    """Known bytes take the same path as new ones, a full write: whether another tenant sent them cannot be timed."""
    root = Path(impasto_of(observed.app).settings.resolved_storage_url().removeprefix("file://"))
    stored = root / upload_key(images.png, "png")
    assert submit(content=images.jpeg, styles=[images.png]).status_code == 202
    first = stored.stat()
    assert submit(content=images.jpeg, styles=[images.png]).status_code == 202
    second = stored.stat()
    # LocalStorage.put writes a temp file and renames it over the key: a new inode each time.
    assert second.st_ino != first.st_ino and second.st_mtime_ns >= first.st_mtime_ns
    assert stored.read_bytes() == images.png
    assert [p.name for p in stored.parent.iterdir() if p.name.startswith(".tmp-")] == []


def test_params_may_come_as_a_file_part(client: FlaskClient, images: Images, observed: Observed) -> None:
    """curl -F params=@params.json sends the params as a file."""
    data = {
        "content": (io.BytesIO(images.jpeg), "c.jpg"),
        "style": (io.BytesIO(images.png), "s.png"),
        "params": (io.BytesIO(json.dumps({"iterations": 7}).encode()), "params.json"),
    }
    response = client.post("/v1/jobs", data=data, content_type="multipart/form-data")
    assert response.status_code == 202
    assert response.get_json()["params"]["iterations"] == 7


def test_broker_down_still_accepts(
    make_app: Callable[..., Flask], submit: Submit, broker: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """The row is committed and stays queued for the reconciler; the failure is logged."""
    app = make_app(broker_url=DEAD_BROKER_URL)
    with caplog.at_level(logging.WARNING):
        response = submit(with_client=keyed_client(app))
    assert response.status_code == 202
    job_id = response.get_json()["id"]
    row = Observed(app, broker).job(job_id)
    assert row.status == JobStatus.QUEUED
    assert row.enqueued_at is None
    assert any(job_id in record.getMessage() for record in caplog.records)


def test_get_job(client: FlaskClient, submit: Submit) -> None:
    """GET answers the same job JSON as the submit."""
    created = submit().get_json()
    response = client.get(f"/v1/jobs/{created['id']}")
    assert response.status_code == 200
    assert response.get_json() == created


@pytest.mark.parametrize("job_id", ["00000000-0000-0000-0000-000000000000", "nope", "a%00b", "x" * 300])
def test_get_unknown_job_is_404_json(client: FlaskClient, job_id: str) -> None:
    """A missing job is a JSON 404, whatever the id looks like."""
    response = client.get(f"/v1/jobs/{job_id}")
    assert response.status_code == 404
    assert response.get_json() == {"error": {"code": "not_found", "message": "job not found"}}


def test_list_pages_newest_first_with_cursors(client: FlaskClient, submit: Submit) -> None:
    """Five jobs, two per page: each exactly once, newest first, then no cursor."""
    created = [submit().get_json()["id"] for _ in range(5)]
    seen: list[str] = []
    pages = 0
    cursor: str | None = None
    while True:
        query = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        response = client.get("/v1/jobs", query_string=query)
        assert response.status_code == 200
        body = response.get_json()
        seen += [job["id"] for job in body["jobs"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(created))
    assert pages == 3


def test_list_default_limit_and_status_filter(
    client: FlaskClient, submit: Submit, worker_actions: WorkerActions
) -> None:
    """status= keeps one status; the default page holds up to 20."""
    ids = [submit().get_json()["id"] for _ in range(3)]
    worker_actions.claim(ids[1])
    assert [j["id"] for j in client.get("/v1/jobs").get_json()["jobs"]] == ids[::-1]
    running = client.get("/v1/jobs?status=running").get_json()
    assert [j["id"] for j in running["jobs"]] == [ids[1]]
    assert running["next_cursor"] is None
    queued = client.get("/v1/jobs?status=queued&limit=1").get_json()
    assert [j["id"] for j in queued["jobs"]] == [ids[2]]
    following = client.get("/v1/jobs", query_string={"status": "queued", "cursor": queued["next_cursor"]})
    assert [j["id"] for j in following.get_json()["jobs"]] == [ids[0]]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("status=done", "status"),
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=WzEsMl0", "cursor"),  # base64url of [1,2]: well-formed, but not ours
    ],
)
def test_list_rejects_bad_queries(client: FlaskClient, query: str, field: str) -> None:
    """Bad limit, status or cursor: 422 naming the parameter."""
    response = client.get(f"/v1/jobs?{query}")
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "invalid_query"
    assert error["details"][0]["field"] == field


def test_cancel_queued_job(client: FlaskClient, submit: Submit, observed: Observed) -> None:
    """A queued job is canceled at once, with its history."""
    job_id = submit().get_json()["id"]
    response = client.post(f"/v1/jobs/{job_id}/cancel")
    assert response.status_code == 200
    job = response.get_json()
    assert job["status"] == "canceled"
    assert job["cancel_requested"] is True
    assert job["finished_at"] is not None
    assert [change.status for change in observed.job(job_id).history] == ["queued", "canceled"]


def test_cancel_is_idempotent(client: FlaskClient, submit: Submit, observed: Observed) -> None:
    """Canceling twice answers the same and records one transition."""
    job_id = submit().get_json()["id"]
    first = client.post(f"/v1/jobs/{job_id}/cancel").get_json()
    second = client.post(f"/v1/jobs/{job_id}/cancel")
    assert second.status_code == 200
    assert second.get_json() == first
    assert [change.status for change in observed.job(job_id).history] == ["queued", "canceled"]


def test_cancel_running_job_sets_the_flag(client: FlaskClient, submit: Submit, worker_actions: WorkerActions) -> None:
    """A running job stays running, flagged, until its worker stops."""
    job_id = submit().get_json()["id"]
    worker_actions.claim(job_id)
    for _ in range(2):
        job = client.post(f"/v1/jobs/{job_id}/cancel").get_json()
        assert (job["status"], job["cancel_requested"]) == ("running", True)


def test_cancel_finished_job_changes_nothing(
    client: FlaskClient, submit: Submit, worker_actions: WorkerActions
) -> None:
    """A succeeded job stays succeeded."""
    job_id = submit().get_json()["id"]
    worker_actions.claim(job_id)
    worker_actions.finish(job_id, JobStatus.SUCCEEDED)
    job = client.post(f"/v1/jobs/{job_id}/cancel").get_json()
    assert (job["status"], job["cancel_requested"]) == ("succeeded", False)


def test_cancel_unknown_job_is_404(client: FlaskClient) -> None:
    """Nothing to cancel."""
    assert client.post("/v1/jobs/nope/cancel").status_code == 404


@pytest.mark.parametrize("claimed", [False, True], ids=["queued", "running"])
def test_delete_unfinished_job_is_409(
    client: FlaskClient, submit: Submit, worker_actions: WorkerActions, observed: Observed, claimed: bool
) -> None:
    """Only finished jobs may be deleted."""
    job_id = submit().get_json()["id"]
    if claimed:
        worker_actions.claim(job_id)
    response = client.delete(f"/v1/jobs/{job_id}")
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "job_not_finished"
    assert observed.job_count() == 1


def test_delete_finished_job_removes_row_and_files(
    client: FlaskClient, submit: Submit, worker_actions: WorkerActions, observed: Observed
) -> None:
    """Row, history, snapshots and the job's images go; the shared uploads stay."""
    job_id = submit().get_json()["id"]
    worker_actions.claim(job_id)
    worker_actions.snapshot(job_id, 4)
    worker_actions.finish(job_id, JobStatus.SUCCEEDED)
    uploads = [name for name in observed.stored_files() if name.startswith("uploads/")]
    assert any(name.startswith(job_prefix(job_id)) for name in observed.stored_files())

    response = client.delete(f"/v1/jobs/{job_id}")
    assert response.status_code == 204
    assert response.get_data() == b""
    assert client.get(f"/v1/jobs/{job_id}").status_code == 404
    assert observed.stored_files() == uploads
    with impasto_of(observed.app).sessions() as session:
        assert session.scalar(select(func.count()).select_from(JobStatusChange)) == 0
        assert session.scalar(select(func.count()).select_from(JobSnapshot)) == 0


def test_delete_canceled_job(client: FlaskClient, submit: Submit) -> None:
    """A job canceled while queued can be deleted; a second DELETE is a 404."""
    job_id = submit().get_json()["id"]
    client.post(f"/v1/jobs/{job_id}/cancel")
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 204
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 404


@pytest.mark.parametrize(("size", "queue"), [(512, SMALL_QUEUE), (2048, LARGE_QUEUE)])
def test_jobs_go_to_the_queue_of_their_size_class(
    submit: Submit, observed: Observed, broker: redis.Redis, size: int, queue: str
) -> None:
    """512 px of a 4:3 image is small; 2048 px (3.1 M pixels) is large: row and message agree."""
    job_id = submit(params={"size": size, "iterations": 10}).get_json()["id"]
    assert observed.job(job_id).queue == queue
    assert broker.llen(queue) == 1 and broker.llen(({SMALL_QUEUE, LARGE_QUEUE} - {queue}).pop()) == 0


def test_no_size_class_holds_the_job(make_app: Callable[..., Flask], submit: Submit, broker: redis.Redis) -> None:
    """Above max_output_pixels: 422 on the size field, nothing stored."""
    app = make_app(max_output_pixels=256 * 256)
    response = submit(with_client=keyed_client(app), params={"size": 512})
    assert response.status_code == 422
    assert response.get_json()["error"]["details"] == [
        {"field": "size", "message": "a 512 px output of this image is 196608 pixels; the limit is 65536"}
    ]
    assert_nothing_changed(Observed(app, broker))
