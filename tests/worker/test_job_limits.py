"""A job's limits in the worker: its run time, a cancel during set-up, and progress that never lags a snapshot."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, select, update
from sqlalchemy.orm import Session

from impasto.shared.models import Job, JobSnapshot
from impasto.worker.context import WorkerContext
from impasto.worker.engine import optimize
from impasto.worker.job_runner import run_transfer
from tests.worker.conftest import make_job
from tests.worker.test_job_runner import load


def with_settings(ctx: WorkerContext, **values: Any) -> WorkerContext:
    """The same worker context with some settings changed."""
    return dataclasses.replace(ctx, settings=ctx.settings.model_copy(update=values))


def test_a_job_past_its_run_time_limit_fails_with_a_clear_code(ctx: WorkerContext, samples: Path) -> None:
    """max_run_seconds=2 on a job of a few hundred iterations: failed / run_time_exceeded, soon after 2 s."""
    limited = with_settings(ctx, max_run_seconds=2.0)
    job_id = make_job(limited, samples, iterations=400, snapshot_every=0)
    started = time.monotonic()
    assert run_transfer(limited, job_id, "w1", "w1/a") == "failed"
    elapsed = time.monotonic() - started
    job = load(limited, job_id)
    assert job.status == "failed" and job.error_code == "run_time_exceeded"
    assert "run-time limit of 2 s" in (job.error_message or "") and "IMPASTO_MAX_RUN_SECONDS" in (
        job.error_message or ""
    )
    assert job.iteration < 400 and job.output_key is None and job.lease_owner is None
    assert [h.status for h in job.history] == ["queued", "running", "failed"]
    assert elapsed < 60, "the limit stopped the run (400 iterations take far longer than this on a CPU)"


def test_a_cancel_during_the_network_load_stops_before_any_target_is_made(
    ctx: WorkerContext, samples: Path, monkeypatch: Any
) -> None:
    """The cancel lands while the model loads: the job ends canceled at iteration 0 with no style Gram computed."""
    job_id = make_job(ctx, samples, iterations=12, snapshot_every=4)
    load_vgg = optimize.load_vgg

    def cancel_while_loading(*args: Any, **kwargs: Any) -> Any:
        with ctx.sessions() as session:  # POST /v1/jobs/{id}/cancel, as the API writes it for a running job
            session.execute(update(Job).where(Job.id == job_id).values(cancel_requested=True))
            session.commit()
        return load_vgg(*args, **kwargs)

    monkeypatch.setattr(optimize, "load_vgg", cancel_while_loading)
    assert run_transfer(ctx, job_id, "w1", "w1/a") == "canceled"
    job = load(ctx, job_id)
    assert job.status == "canceled" and job.iteration == 0 and job.snapshots == []
    # Before, the content targets and the style Grams were made (a miss in the cache) before the cancel was seen.
    assert (ctx.gram_cache.hits, ctx.gram_cache.misses) == (0, 0)


def test_progress_is_written_before_a_snapshot_is_listed(ctx: WorkerContext, samples: Path) -> None:
    """At every commit, the job's progress.iteration is at least its newest listed snapshot's iteration."""
    throttled = with_settings(ctx, progress_interval_s=3600.0, event_interval_s=3600.0)  # only forced writes
    job_id = make_job(throttled, samples, iterations=12, snapshot_every=4)
    engine = ctx.sessions.kw["bind"]
    seen: list[tuple[int, int]] = []  # (newest snapshot, progress) at each commit that lists snapshots

    def check(_session: Session) -> None:
        with engine.connect() as conn:
            newest = conn.scalar(select(func.max(JobSnapshot.iteration)).where(JobSnapshot.job_id == job_id))
            iteration = conn.scalar(select(Job.iteration).where(Job.id == job_id))
        if newest is not None:
            seen.append((newest, iteration))

    event.listen(ctx.sessions, "after_commit", check)
    try:
        assert run_transfer(throttled, job_id, "w1", "w1/a") == "succeeded"
    finally:
        event.remove(ctx.sessions, "after_commit", check)
    assert {newest for newest, _ in seen} == {4, 8, 12}
    lagging = [(newest, iteration) for newest, iteration in seen if iteration < newest]
    assert lagging == [], "a snapshot was listed while progress.iteration was still behind it"
