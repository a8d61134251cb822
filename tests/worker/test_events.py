"""A job's live events on its Redis stream: status, progress and snapshots, in order."""

from __future__ import annotations

import json
from pathlib import Path

import redis

from impasto.shared.celery_app import make_celery
from impasto.shared.database import upgrade_database
from impasto.shared.events import FINISHED_STREAM_TTL_S, stream_key
from impasto.shared.settings import get_settings
from impasto.worker.context import build_context
from impasto.worker.job_runner import run_transfer
from tests.worker.conftest import make_job


def test_a_run_publishes_status_progress_and_snapshots(tmp_path: Path, samples: Path, redis_url: str) -> None:
    """running, then progress and snapshot events with increasing ids, then succeeded."""
    settings = get_settings(
        data_dir=tmp_path, broker_url=redis_url, storage_url=f"file://{tmp_path / 'storage'}", device="cpu",
        event_interval_s=0.0,
    )  # fmt: skip
    upgrade_database(settings)
    ctx = build_context(settings, make_celery(settings))
    job_id = make_job(ctx, samples, iterations=8, snapshot_every=4)
    assert run_transfer(ctx, job_id, "w1", "w1/a") == "succeeded"
    client = redis.Redis.from_url(redis_url)
    entries = client.xrange(stream_key(job_id))
    ttl = client.ttl(stream_key(job_id))
    client.close()
    ctx.events.close()
    events = [(e[b"event"].decode(), json.loads(e[b"data"])) for _, e in entries]
    ids = [entry_id for entry_id, _ in entries]
    assert ids == sorted(ids)
    assert events[0] == ("status", {"status": "running", "worker": "w1", "attempt": 1})
    assert events[-1] == ("status", {"status": "succeeded", "error": None})
    progress = [data["iteration"] for name, data in events if name == "progress"]
    assert progress == list(range(1, 9))
    assert [data["iteration"] for name, data in events if name == "snapshot"] == [4, 8]
    assert events[1][1]["loss"]["total"] > 0 and events[1][1]["iterations"] == 8
    assert 0 < ttl <= FINISHED_STREAM_TTL_S, "a finished job's stream expires within the hour"
