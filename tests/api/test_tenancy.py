"""Isolation between API keys: another key's job answers exactly as a missing one, and is left
as it was; lists and Idempotency-Keys are per key."""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from impasto.shared.status import JobStatus
from tests.api.conftest import Images, Observed, Submit, WorkerActions, keyed_client

# Every endpoint that takes a job id: (method, path after /v1/jobs/{id}).
JOB_ENDPOINTS = [
    ("GET", ""),
    ("POST", "/cancel"),
    ("DELETE", ""),
    ("GET", "/output"),
    ("GET", "/intermediates/4"),
]
IDS = ["get", "cancel", "delete", "output", "intermediates"]


@pytest.fixture
def other(app: Flask) -> FlaskClient:
    """A client with a second key (B)."""
    return keyed_client(app)


def call(client: FlaskClient, method: str, job_id: str, suffix: str) -> TestResponse:
    """One request to a job's endpoint."""
    return client.open(f"/v1/jobs/{job_id}{suffix}", method=method)


def state(observed: Observed, job_id: str) -> dict[str, Any]:
    """What a request could change about a job: its row and its files."""
    row = observed.job(job_id)
    return {
        "status": row.status,
        "cancel_requested": row.cancel_requested,
        "finished_at": row.finished_at,
        "history": [change.status for change in row.history],
        "snapshots": [snapshot.iteration for snapshot in row.snapshots],
        "files": observed.stored_files(),
    }


def finished_job(submit: Submit, worker_actions: WorkerActions) -> str:
    """Key A's job, succeeded, with a snapshot at iteration 4 and an output."""
    job_id: str = submit().get_json()["id"]
    worker_actions.claim(job_id)
    worker_actions.snapshot(job_id, 4)
    worker_actions.finish(job_id, JobStatus.SUCCEEDED)
    return job_id


@pytest.mark.parametrize(("method", "suffix"), JOB_ENDPOINTS, ids=IDS)
def test_another_keys_job_is_a_missing_job(
    client: FlaskClient,
    other: FlaskClient,
    submit: Submit,
    worker_actions: WorkerActions,
    observed: Observed,
    method: str,
    suffix: str,
) -> None:
    """Key B gets the 404 a missing job gets, byte for byte; key A's job is untouched."""
    job_id = finished_job(submit, worker_actions)
    before = state(observed, job_id)
    foreign = call(other, method, job_id, suffix)
    missing = call(other, method, str(uuid.uuid4()), suffix)
    assert foreign.status_code == missing.status_code == 404
    assert foreign.get_data() == missing.get_data()
    assert foreign.get_json() == {"error": {"code": "not_found", "message": "job not found"}}
    assert set(foreign.headers.keys()) == set(missing.headers.keys())
    assert state(observed, job_id) == before
    assert call(client, method, job_id, suffix).status_code in (200, 204)  # A still can


@pytest.mark.parametrize(("method", "suffix"), [e for e in JOB_ENDPOINTS if e[0] != "GET"], ids=["cancel", "delete"])
def test_another_key_cannot_change_a_queued_job(
    client: FlaskClient, other: FlaskClient, submit: Submit, observed: Observed, method: str, suffix: str
) -> None:
    """Cancel and delete by key B leave key A's queued job queued."""
    job_id = submit().get_json()["id"]
    before = state(observed, job_id)
    assert call(other, method, job_id, suffix).status_code == 404
    assert state(observed, job_id) == before
    assert client.get(f"/v1/jobs/{job_id}").get_json()["status"] == "queued"


def test_lists_are_per_key(client: FlaskClient, other: FlaskClient, submit: Submit) -> None:
    """Each key lists its own jobs only, also when filtering and paging."""
    mine = [submit().get_json()["id"] for _ in range(3)]
    theirs = [submit(with_client=other).get_json()["id"] for _ in range(2)]
    assert [job["id"] for job in client.get("/v1/jobs").get_json()["jobs"]] == mine[::-1]
    assert [job["id"] for job in other.get("/v1/jobs?status=queued").get_json()["jobs"]] == theirs[::-1]
    page = other.get("/v1/jobs?limit=1").get_json()
    rest = other.get("/v1/jobs", query_string={"cursor": page["next_cursor"]}).get_json()
    assert [job["id"] for job in page["jobs"] + rest["jobs"]] == theirs[::-1]
    assert rest["next_cursor"] is None


def test_a_cursor_from_another_key_shows_only_your_jobs(
    client: FlaskClient, other: FlaskClient, submit: Submit
) -> None:
    """Cursors are positions, not capabilities: B paging with A's cursor still sees B's jobs only."""
    theirs = [submit(with_client=other).get_json()["id"] for _ in range(2)]
    for _ in range(3):
        submit()
    cursor = client.get("/v1/jobs?limit=1").get_json()["next_cursor"]
    seen = [job["id"] for job in other.get("/v1/jobs", query_string={"cursor": cursor}).get_json()["jobs"]]
    assert set(seen) <= set(theirs)


def post_with_key(client: FlaskClient, images: Images, idempotency_key: str) -> TestResponse:
    """Submit the same job with an Idempotency-Key."""
    form = {
        "content": (io.BytesIO(images.jpeg), "c.jpg"),
        "style": [(io.BytesIO(images.png), "s.png")],
        "params": json.dumps({"iterations": 10}),
    }
    return client.post(
        "/v1/jobs", data=form, content_type="multipart/form-data", headers={"Idempotency-Key": idempotency_key}
    )


def test_idempotency_keys_are_per_api_key(
    client: FlaskClient, other: FlaskClient, images: Images, observed: Observed
) -> None:
    """A's "abc" and B's "abc" make two jobs, each replayed to its own key only."""
    first_a = post_with_key(client, images, "abc")
    first_b = post_with_key(other, images, "abc")
    assert first_a.status_code == first_b.status_code == 202
    assert first_a.get_json()["id"] != first_b.get_json()["id"]
    again_b = post_with_key(other, images, "abc")
    assert again_b.headers["Idempotent-Replayed"] == "true"
    assert again_b.get_json()["id"] == first_b.get_json()["id"]
    assert observed.job_count() == 2
