"""The job JSON: every field of ARCHITECTURE.md, in UTC, with absolute URLs."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

from flask import Flask
from flask.testing import FlaskClient

from impasto.api.job_json import utc
from impasto.api.schemas import Job as JobSchema
from impasto.shared.jobs import owned_update
from impasto.shared.status import JobStatus
from tests.api.conftest import WORKER_NAME, Images, Submit, WorkerActions, impasto_of, keyed_client

CONTRACT_KEYS = {
    "id", "status", "created_at", "started_at", "finished_at", "params", "progress", "outputs",
    "error", "attempts", "worker", "metrics", "urls",
}  # fmt: skip


def parse_utc(text: str) -> datetime:
    """An ISO 8601 timestamp that must say it is UTC."""
    assert text.endswith(("Z", "+00:00")), text
    return datetime.fromisoformat(text)


def test_queued_job_json(client: FlaskClient, submit: Submit) -> None:
    """A new job: the contract's keys, nulls where nothing happened yet, absolute URLs."""
    job = submit(params={"iterations": 40}).get_json()
    assert CONTRACT_KEYS <= set(job)
    assert abs(parse_utc(job["created_at"]) - datetime.now(UTC)) < timedelta(minutes=1)
    assert job["started_at"] is None and job["finished_at"] is None
    assert job["outputs"] == {"final": None, "intermediates": []}
    assert job["error"] is None
    assert (job["attempts"], job["worker"], job["cancel_requested"]) == (0, None, False)
    assert job["metrics"] == {"queue_seconds": None, "run_seconds": None, "iterations_per_second": None, "device": None}
    base = f"http://localhost/v1/jobs/{job['id']}"
    assert job["urls"] == {
        "self": base,
        "cancel": f"{base}/cancel",
        "output": f"{base}/output",
        "events": f"{base}/events",
    }
    JobSchema.model_validate(job)


def test_running_job_progress(client: FlaskClient, app: Flask, submit: Submit, worker_actions: WorkerActions) -> None:
    """Progress, losses and ETA as the worker wrote them."""
    job_id = submit(params={"iterations": 500}).get_json()["id"]
    worker_actions.claim(job_id)
    with impasto_of(app).sessions() as session:
        assert owned_update(
            session, job_id, WORKER_NAME, iteration=120, eta_seconds=31.0, device="cuda:0", queue_seconds=0.04,
            losses={"content": 1.2, "style": 3.4, "tv": 0.1, "total": 4.7},
        )  # fmt: skip
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    assert job["status"] == "running"
    parse_utc(job["started_at"])
    assert job["progress"] == {
        "iteration": 120,
        "iterations": 500,
        "percent": 24.0,
        "loss": {"content": 1.2, "style": 3.4, "tv": 0.1, "total": 4.7},
        "eta_seconds": 31.0,
    }
    assert (job["attempts"], job["worker"]) == (1, WORKER_NAME)
    assert job["metrics"]["device"] == "cuda:0"
    assert job["metrics"]["queue_seconds"] == 0.04


def test_finished_jobs(client: FlaskClient, submit: Submit, worker_actions: WorkerActions) -> None:
    """A success has an output URL and metrics; a failure its error."""
    ok, bad = (submit().get_json()["id"] for _ in range(2))
    for job_id in (ok, bad):
        worker_actions.claim(job_id)
    worker_actions.finish(ok, JobStatus.SUCCEEDED, run_seconds=12.5, iterations_per_second=40.0)
    worker_actions.finish(bad, JobStatus.FAILED, error_code="out_of_memory", error_message="CUDA out of memory")
    succeeded = client.get(f"/v1/jobs/{ok}").get_json()
    assert succeeded["outputs"]["final"] == f"http://localhost/v1/jobs/{ok}/output"
    assert parse_utc(succeeded["finished_at"]) >= parse_utc(succeeded["started_at"])
    assert succeeded["metrics"]["run_seconds"] == 12.5
    assert succeeded["metrics"]["iterations_per_second"] == 40.0
    failed = client.get(f"/v1/jobs/{bad}").get_json()
    assert failed["error"] == {"code": "out_of_memory", "message": "CUDA out of memory"}
    assert failed["outputs"]["final"] is None


def test_utc_normalises_sql_datetimes() -> None:
    """Naive values (SQLite) are UTC; aware ones in another zone are converted."""
    naive = datetime(2026, 1, 2, 3, 4, 5)
    assert utc(naive) == naive.replace(tzinfo=UTC)
    paris = datetime(2026, 1, 2, 4, 4, 5, tzinfo=timezone(timedelta(hours=1)))
    assert utc(paris) == naive.replace(tzinfo=UTC)
    assert utc(paris).tzinfo == UTC  # type: ignore[union-attr]
    assert utc(None) is None


def test_urls_start_with_impasto_url_whatever_the_host_header(make_app: Callable[..., Flask], images: Images) -> None:
    """With IMPASTO_URL set, a crafted Host header appears in no URL of the job JSON (list, get, submit)."""
    app = make_app(url="https://impasto.example.com/base/")
    client = keyed_client(app)
    crafted = {"Host": "evil.example:666"}
    files = {"content": (io.BytesIO(images.jpeg), "c.jpg"), "style": (io.BytesIO(images.png), "s.png")}
    submitted = client.post("/v1/jobs", data=files, headers=crafted)
    assert submitted.status_code == 202, submitted.get_json()
    job_id = submitted.get_json()["id"]
    for body in (
        submitted.get_json(),
        client.get(f"/v1/jobs/{job_id}", headers=crafted).get_json(),
        client.get("/v1/jobs", headers=crafted).get_json()["jobs"][0],
    ):
        assert "evil" not in json.dumps(body)
        assert body["urls"]["self"] == f"https://impasto.example.com/base/v1/jobs/{job_id}"
        assert body["urls"]["output"] == f"https://impasto.example.com/base/v1/jobs/{job_id}/output"


def test_without_impasto_url_the_urls_follow_the_request(app: Flask, submit: Submit) -> None:
    """Unset, the server knows no public name of its own: URLs are on the address the request used."""
    assert "url" not in impasto_of(app).settings.model_fields_set
    job = submit().get_json()
    assert job["urls"]["self"] == f"http://localhost/v1/jobs/{job['id']}"
