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

from tests.conftest import flushed_redis
from tests.e2e.conftest import Processes, auth, start_production_stack
from tests.shared.webhook_receiver import Receiver

SECRET = "whsec_z8/O6llm3VmEZmc5wcXDE+BhqdASHgdXwj/600ntpqM="  # made by `impasto webhook-secret`


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


def test_job_events_reach_a_receiver_that_verifies_with_the_reference_library(
    webhook_stack: tuple[str, Processes], samples: Path
) -> None:
    """start, both snapshots and completed arrive from the webhook worker's queue for a real job, and a
    receiver using standardwebhooks' Webhook(secret).verify(raw body, headers), as the README shows,
    accepts every one; their sequence numbers put them in the job's order."""
    url, processes = webhook_stack
    with Receiver(secret=SECRET) as receiver:
        files = [
            ("content", ("chelsea.jpg", (samples / "chelsea.jpg").read_bytes(), "image/jpeg")),
            ("style", ("starry_night.jpg", (samples / "starry_night.jpg").read_bytes(), "image/jpeg")),
        ]
        data = {"params": json.dumps({"size": 64, "iterations": 10, "snapshot_every": 5}), "webhook": receiver.url}
        response = requests.post(f"{url}/v1/jobs", files=files, data=data, headers=auth(url), timeout=30)
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        # No polling (it would hit the rate limit on a slow CPU run): the webhooks say when it is done.
        received = receiver.wait_for(4, timeout=200)
    assert all(request.verified for request in received), processes.log("webhooks")
    in_order = sorted(received, key=lambda request: request.json()["sequence"])
    assert [(r.json()["type"], r.json()["sequence"]) for r in in_order] == [
        ("start", 0),
        ("snapshot", 5),
        ("snapshot", 10),
        ("completed", 11),
    ]
    for request in received:
        assert request.headers["webhook-id"].startswith(f"{job_id}:{request.json()['type']}:")
    completed = in_order[-1].json()["job"]
    assert completed["status"] == "succeeded"
    assert completed["urls"]["output"].endswith(f"/v1/jobs/{job_id}/output")
    assert requests.get(f"{url}/v1/jobs/{job_id}", headers=auth(url), timeout=10).json()["status"] == "succeeded"
