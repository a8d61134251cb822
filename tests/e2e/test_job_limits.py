"""A job's limits with real processes (gunicorn, a Celery worker, PostgreSQL, Redis): a cancel takes
effect during the job's set-up, and a job that runs past IMPASTO_MAX_RUN_SECONDS fails."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import create_postgres_database, drop_postgres_database, flushed_redis
from tests.e2e.conftest import Processes, auth, start_production_stack
from tests.e2e.test_pipeline import poll

RUN_LIMIT_S = 20
ENDED = ("succeeded", "failed", "canceled")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Processes]]:
    """One API and one worker for the module (a worker takes a while to import torch), run time capped at 20 s."""
    name, database_url = create_postgres_database()
    redis = flushed_redis(10)
    try:
        with start_production_stack(
            tmp_path_factory.mktemp("limits"), database_url, next(redis), max_run_seconds=str(RUN_LIMIT_S)
        ) as running:
            yield running
    finally:
        next(redis, None)
        drop_postgres_database(name)


def submit(url: str, samples: Path, params: dict[str, Any], styles: int = 1) -> str:
    """POST a job of the sample cat in `styles` copies of Starry Night; returns its id."""
    style = ("style", ("starry_night.jpg", (samples / "starry_night.jpg").read_bytes(), "image/jpeg"))
    files = [("content", ("chelsea.jpg", (samples / "chelsea.jpg").read_bytes(), "image/jpeg")), *[style] * styles]
    response = requests.post(
        f"{url}/v1/jobs", files=files, data={"params": json.dumps(params)}, headers=auth(url), timeout=30
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def test_a_cancel_during_set_up_takes_effect_at_once(stack: tuple[str, Processes], samples: Path) -> None:
    """Four style images at 1024 px: their Gram targets take a CPU a minute; a cancel ends the job within seconds."""
    url, processes = stack
    job_id = submit(url, samples, {"size": 256, "style_scale": 4, "iterations": 50, "snapshot_every": 0}, styles=4)
    poll(url, job_id, ("running", *ENDED), timeout=120)
    time.sleep(2)  # into the set-up: the network, the content targets, the first style's pass
    asked = time.monotonic()
    response = requests.post(f"{url}/v1/jobs/{job_id}/cancel", headers=auth(url), timeout=10)
    assert response.status_code == 200 and response.json()["status"] == "running"
    job, _ = poll(url, job_id, ENDED, timeout=15)
    took = time.monotonic() - asked
    assert job["status"] == "canceled", (job, processes.log("worker")[-3000:])
    assert job["progress"]["iteration"] == 0, "the cancel came before the first iteration"
    print(f"\ncanceled {took:.1f} s after the cancel request, during set-up")


def test_a_job_past_the_run_time_limit_fails(stack: tuple[str, Processes], samples: Path) -> None:
    """IMPASTO_MAX_RUN_SECONDS=20 and a job of 5000 iterations: failed, run_time_exceeded, once it passed 20 s."""
    url, processes = stack
    job_id = submit(url, samples, {"size": 64, "iterations": 5000, "snapshot_every": 0})
    job, _ = poll(url, job_id, ENDED, timeout=RUN_LIMIT_S + 120)
    assert job["status"] == "failed", (job, processes.log("worker")[-3000:])
    assert job["error"]["code"] == "run_time_exceeded"
    assert f"run-time limit of {RUN_LIMIT_S} s" in job["error"]["message"]
    assert 0 < job["progress"]["iteration"] < 5000
