"""Webhooks end to end: API, worker and `impasto webhook-worker` as real processes, on PostgreSQL
and Redis database 11 (this file's own: another stack's worker on a shared database would take
this stack's jobs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from shared.webhooks import verify
from tests.e2e.conftest import API_KEYS, ROOT, Processes, auth, free_port, wait_ready
from tests.shared.webhook_receiver import Receiver

REDIS_URL = "redis://127.0.0.1:6379/11"
SECRET = "e2e-webhook-secret"


@pytest.fixture
def webhook_stack(tmp_path: Path, postgres_url: str) -> Iterator[tuple[str, Processes]]:
    """The API, one CPU worker and one webhook worker, as production_stack but on Redis db 11."""
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    port = free_port()
    env = {
        **os.environ,
        "IMPASTO_DATA_DIR": str(tmp_path / "data"),
        "IMPASTO_DATABASE_URL": postgres_url,
        "IMPASTO_BROKER_URL": REDIS_URL,
        "IMPASTO_STORAGE_URL": f"file://{tmp_path / 'storage'}",
        "IMPASTO_DEVICE": "cpu",
        "IMPASTO_WEBHOOK_SECRET": SECRET,
        "IMPASTO_WEBHOOK_ALLOW_PRIVATE": "true",  # the receiver is on loopback
    }
    processes = Processes(env, tmp_path)
    run = {"env": env, "cwd": ROOT, "check": True, "capture_output": True, "text": True}
    subprocess.run([sys.executable, "-m", "shared.cli", "db", "upgrade"], **run)  # type: ignore[call-overload]
    key = subprocess.run([sys.executable, "-m", "shared.cli", "keys", "create", "--name", "e2e"], **run).stdout.strip()  # type: ignore[call-overload]
    processes.start("worker", "worker", "--name", "e2e-webhooks@localhost")
    processes.start("webhooks", "webhook-worker", "--concurrency", "2")
    processes.start("api", "api", "--port", str(port), "--workers", "1")
    url = f"http://127.0.0.1:{port}"
    API_KEYS[url] = key
    try:
        wait_ready(url)
        yield url, processes
    finally:
        processes.stop_all()
        API_KEYS.pop(url, None)
        client.flushdb()
        client.close()


def test_job_events_reach_a_signed_webhook(webhook_stack: tuple[str, Processes], samples: Path) -> None:
    """start and completed arrive signed, from the webhook worker's queue, for a real job."""
    url, processes = webhook_stack
    with Receiver() as receiver:
        files = [
            ("content", ("chelsea.jpg", (samples / "chelsea.jpg").read_bytes(), "image/jpeg")),
            ("style", ("starry_night.jpg", (samples / "starry_night.jpg").read_bytes(), "image/jpeg")),
        ]
        data = {
            "params": json.dumps({"size": 64, "iterations": 10, "snapshot_every": 5}),
            "webhook": receiver.url,
            "webhook_events_filter": "start,completed",
        }
        response = requests.post(f"{url}/v1/jobs", files=files, data=data, headers=auth(url), timeout=30)
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        # No polling (it would hit the rate limit on a slow CPU run): the webhooks say when it is done.
        received = receiver.wait_for(2, timeout=200)
    by_type = {json.loads(request.body)["type"]: request for request in received}
    assert set(by_type) == {"start", "completed"}, processes.log("webhooks")
    for event, request in by_type.items():
        assert verify(SECRET, request.headers, request.body)
        assert request.headers["webhook-id"].startswith(f"{job_id}:{event}:")
    completed = json.loads(by_type["completed"].body)["job"]
    assert completed["status"] == "succeeded"
    assert completed["urls"]["output"].endswith(f"/v1/jobs/{job_id}/output")
    assert requests.get(f"{url}/v1/jobs/{job_id}", headers=auth(url), timeout=10).json()["status"] == "succeeded"
