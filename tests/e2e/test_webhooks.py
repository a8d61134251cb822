"""Webhooks end to end: API, worker and `impasto webhook-worker` as real processes, on PostgreSQL
and Redis database 11 (this file's own: another stack's worker on a shared database would take
this stack's jobs)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from shared.webhooks import verify
from tests.conftest import flushed_redis
from tests.e2e.conftest import Processes, auth, start_production_stack
from tests.shared.webhook_receiver import Receiver

SECRET = "e2e-webhook-secret"


@pytest.fixture
def webhook_stack(tmp_path: Path, postgres_url: str) -> Iterator[tuple[str, Processes]]:
    """production_stack on Redis db 11, signing webhooks, with a webhook worker beside it."""
    with (
        contextlib.contextmanager(flushed_redis)(11) as redis_url,
        # private addresses allowed: the receiver is on loopback
        start_production_stack(
            tmp_path, postgres_url, redis_url, webhook_secret=SECRET, webhook_allow_private="true"
        ) as (url, processes),
    ):
        processes.start("webhooks", "webhook-worker", "--concurrency", "2")
        yield url, processes


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
