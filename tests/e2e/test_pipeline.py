"""The whole pipeline with real processes: HTTP -> broker (Redis, and RabbitMQ) -> Celery worker -> PostgreSQL and
storage."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from PIL import Image, ImageChops, ImageStat
from sqlalchemy import create_engine, text

from impasto.shared.events import stream_key
from tests.e2e.conftest import Processes, auth, start_production_stack
from tests.e2e.rabbitmq import rabbitmq_vhost

SMALL_JOB = {"size": 64, "iterations": 20, "snapshot_every": 5}


@pytest.fixture(params=["redis", "rabbitmq"])
def production_stack(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_url: str, redis_url: str
) -> Iterator[tuple[str, Processes]]:
    """The API under gunicorn and one worker on PostgreSQL, with Redis as the broker, or RabbitMQ as the broker
    (a vhost of its own; durable quorum queues) and Redis for the live events only."""
    if request.param == "redis":
        with start_production_stack(tmp_path, postgres_url, redis_url) as stack:
            yield stack
        return
    with (
        rabbitmq_vhost() as amqp_url,
        start_production_stack(tmp_path, postgres_url, amqp_url, events_redis_url=redis_url) as stack,
    ):
        yield stack


def event_names(redis_url: str, job_id: str) -> list[str]:
    """The events of the job's live stream in Redis, oldest first."""
    client = redis.Redis.from_url(redis_url)
    try:
        return [fields[b"event"].decode() for _, fields in client.xrange(stream_key(job_id))]
    finally:
        client.close()


def submit(url: str, samples: Path, params: dict[str, Any]) -> dict[str, Any]:
    """POST a job with the bundled cat and Starry Night."""
    files = [
        ("content", ("chelsea.jpg", (samples / "chelsea.jpg").read_bytes(), "image/jpeg")),
        ("style", ("starry_night.jpg", (samples / "starry_night.jpg").read_bytes(), "image/jpeg")),
    ]
    response = requests.post(
        f"{url}/v1/jobs", files=files, data={"params": json.dumps(params)}, headers=auth(url), timeout=30
    )
    assert response.status_code == 202, response.text
    assert response.headers["Location"].endswith(f"/v1/jobs/{response.json()['id']}")
    return response.json()  # type: ignore[no-any-return]


def poll(url: str, job_id: str, until: tuple[str, ...], timeout: float = 120) -> tuple[dict[str, Any], list[int]]:
    """Poll a job until its status is in `until`; returns it and every iteration seen."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = requests.get(f"{url}/v1/jobs/{job_id}", headers=auth(url), timeout=10)
        if response.status_code == 429:  # the key's request rate (600/min): a slow, loaded machine polls long
            time.sleep(float(response.headers.get("Retry-After", "1")))
            continue
        assert response.status_code == 200, response.text
        job = response.json()
        seen.append(job["progress"]["iteration"])
        if job["status"] in until:
            return job, seen
        time.sleep(0.15)  # under the rate limit's 10 a second, and finer than the 0.2 s progress writes
    raise TimeoutError(f"job {job_id} not {until} after {timeout} s: {job}")


def history(database_url: str, job_id: str) -> list[str]:
    """The job's status history from SQL, oldest first."""
    engine = create_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT status FROM job_status_history WHERE job_id = :id ORDER BY id"), {"id": job_id}
        ).all()
    engine.dispose()
    return [r[0] for r in rows]


def check_finished_job(url: str, job: dict[str, Any], samples: Path) -> None:
    """Snapshots at every 5th iteration, and a final PNG that is not the content."""
    assert [s["iteration"] for s in job["outputs"]["intermediates"]] == [5, 10, 15, 20]
    for snap in job["outputs"]["intermediates"]:
        response = requests.get(snap["url"], headers=auth(url), timeout=10)
        assert response.status_code == 200 and response.headers["Content-Type"] == "image/png"
        Image.open(io.BytesIO(response.content)).verify()
    response = requests.get(job["outputs"]["final"], headers=auth(url), timeout=10)
    assert response.status_code == 200
    final = Image.open(io.BytesIO(response.content)).convert("RGB")
    assert max(final.size) == 64
    content = Image.open(samples / "chelsea.jpg").convert("RGB").resize(final.size)
    mean_difference = sum(ImageStat.Stat(ImageChops.difference(final, content)).mean) / 3
    assert mean_difference > 5, "the output is (nearly) the content image"


def test_job_runs_through_broker_worker_and_postgres(
    production_stack: tuple[str, Processes], samples: Path, postgres_url: str, redis_url: str
) -> None:
    """Submit over HTTP, poll to succeeded; history, progress, snapshots, output and live events are right."""
    url, processes = production_stack
    job = submit(url, samples, SMALL_JOB)
    assert job["status"] == "queued"
    final, iterations = poll(url, job["id"], ("succeeded", "failed", "canceled"))
    assert final["status"] == "succeeded", (final, processes.log("worker")[-3000:])
    assert iterations == sorted(iterations), "progress went backwards"
    assert final["progress"]["iteration"] == 20 and final["progress"]["percent"] == 100.0
    assert history(postgres_url, job["id"]) == ["queued", "running", "succeeded"]
    assert final["worker"] == "e2e@localhost" and final["metrics"]["device"] == "cpu"
    assert final["metrics"]["run_seconds"] > 0 and final["metrics"]["queue_seconds"] >= 0
    check_finished_job(url, final, samples)
    events = event_names(redis_url, job["id"])  # the broker's Redis, or IMPASTO_EVENTS_REDIS_URL beside RabbitMQ
    assert events[0] == "status" and "progress" in events and "snapshot" in events and events[-1] == "status"


def test_cancel_running_and_queued_jobs(
    production_stack: tuple[str, Processes], samples: Path, postgres_url: str
) -> None:
    """A running job is canceled within 2 s and keeps its snapshots; a queued one never starts."""
    url, _ = production_stack
    running = submit(url, samples, {"size": 64, "iterations": 500, "snapshot_every": 5})
    waiting = submit(url, samples, {"size": 64, "iterations": 20})
    deadline = time.monotonic() + 60
    while (
        requests.get(f"{url}/v1/jobs/{running['id']}", headers=auth(url), timeout=10).json()["progress"]["iteration"]
        < 6
    ):
        assert time.monotonic() < deadline, "the long job never started"
        time.sleep(0.1)
    canceled = requests.post(f"{url}/v1/jobs/{waiting['id']}/cancel", headers=auth(url), timeout=10).json()
    assert canceled["status"] == "canceled"
    asked = time.monotonic()
    response = requests.post(f"{url}/v1/jobs/{running['id']}/cancel", headers=auth(url), timeout=10)
    assert response.status_code == 200
    job, _ = poll(url, running["id"], ("canceled", "succeeded", "failed"), timeout=10)
    assert job["status"] == "canceled"
    assert time.monotonic() - asked <= 2.0, "cancel took longer than 2 s"
    assert job["outputs"]["intermediates"], "a canceled job keeps its snapshots"
    # Let the worker take the canceled message off the queue, then check it never ran.
    time.sleep(1.5)
    assert history(postgres_url, waiting["id"]) == ["queued", "canceled"]
    assert requests.get(f"{url}/v1/jobs/{waiting['id']}", headers=auth(url), timeout=10).json()["status"] == "canceled"
