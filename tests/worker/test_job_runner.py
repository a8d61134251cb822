"""run_transfer against a real database and storage: claims, resume, failures, lost leases."""

from __future__ import annotations

import io
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from PIL import Image
from sqlalchemy import update

from impasto.shared.jobs import UNWATCHED, add_snapshot, claim_job, end_expired_lease, finish_job
from impasto.shared.models import Job, utcnow
from impasto.shared.previews import PREVIEW_MAX_SIDE, preview_key
from impasto.shared.status import JobStatus
from impasto.shared.storage import output_key, snapshot_key
from impasto.worker import job_callbacks, job_runner
from impasto.worker.context import WorkerContext
from impasto.worker.engine import stylize
from impasto.worker.engine.imaging import png_bytes
from impasto.worker.job_callbacks import JobCallbacks
from impasto.worker.job_runner import run_transfer
from impasto.worker.lease import Lease
from tests.worker.conftest import make_job


def load(ctx: WorkerContext, job_id: str) -> Job:
    """The job row with its history and snapshots loaded."""
    with ctx.sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        _ = list(job.history), list(job.snapshots)
        return job


def expire_lease(ctx: WorkerContext, job_id: str) -> None:
    """Make the current lease look abandoned (its worker died)."""
    with ctx.sessions() as session:
        session.execute(update(Job).where(Job.id == job_id).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()


def test_runs_to_success_with_snapshots_and_metrics(ctx: WorkerContext, samples: Path) -> None:
    """A queued job ends succeeded, with its output, snapshots, losses and history."""
    job_id = make_job(ctx, samples)
    assert run_transfer(ctx, job_id, "w1", "w1/a") == "succeeded"
    job = load(ctx, job_id)
    assert job.status == "succeeded" and job.iteration == 12 and job.attempts == 1
    assert [h.status for h in job.history] == ["queued", "running", "succeeded"]
    assert [s.iteration for s in job.snapshots] == [4, 8, 12]
    assert job.output_key and ctx.storage.exists(job.output_key)
    assert job.losses and job.losses["total"] > 0 and job.iterations_per_second and job.run_seconds
    assert job.lease_owner is None and job.worker == "w1" and job.device == "cpu"


def test_a_run_stores_a_preview_beside_each_image_before_listing_it(
    ctx: WorkerContext, samples: Path, monkeypatch: Any
) -> None:
    """Each snapshot and the final image get a JPEG preview, stored before the job lists the image: the
    API then serves it as stored and never decodes the PNG for it."""
    job_id = make_job(ctx, samples)
    listed: list[str] = []

    def add_snapshot_seeing_preview(session: Any, job: str, iteration: int, key: str) -> Any:
        assert ctx.storage.exists(preview_key(key)), f"snapshot {iteration} listed before its preview"
        listed.append(key)
        return add_snapshot(session, job, iteration, key)

    def finish_seeing_preview(*args: Any, **values: Any) -> Any:
        if "output_key" in values:
            assert ctx.storage.exists(preview_key(values["output_key"])), "final image recorded before its preview"
            listed.append(values["output_key"])
        return finish_job(*args, **values)

    monkeypatch.setattr(job_callbacks, "add_snapshot", add_snapshot_seeing_preview)
    monkeypatch.setattr(job_runner, "finish_job", finish_seeing_preview)
    assert run_transfer(ctx, job_id, "w1", "w1/a") == "succeeded"
    job = load(ctx, job_id)
    assert listed == [snapshot_key(job_id, 4), snapshot_key(job_id, 8), snapshot_key(job_id, 12), output_key(job_id)]
    for key in listed:
        full = Image.open(io.BytesIO(ctx.storage.get(key)))
        preview = Image.open(io.BytesIO(ctx.storage.get(preview_key(key))))
        assert (preview.format, preview.mode) == ("JPEG", "RGB")
        assert preview.size == full.size and max(preview.size) <= PREVIEW_MAX_SIDE  # a small job: not enlarged
    assert job.output_key == output_key(job_id)


def test_duplicate_delivery_is_dropped(ctx: WorkerContext, samples: Path) -> None:
    """The same message twice: the second finds the job finished and runs nothing."""
    job_id = make_job(ctx, samples)
    assert run_transfer(ctx, job_id, "w1", "w1/a") == "succeeded"
    assert run_transfer(ctx, job_id, "w2", "w2/b") == "dropped"
    assert [h.status for h in load(ctx, job_id).history] == ["queued", "running", "succeeded"]


def test_a_live_lease_cannot_be_claimed(ctx: WorkerContext, samples: Path) -> None:
    """While one worker holds the lease, another's claim fails; after expiry it succeeds."""
    job_id = make_job(ctx, samples)
    with ctx.sessions() as session:
        assert claim_job(session, job_id, "w1/a", 30)
        assert not claim_job(session, job_id, "w2/b", 30)
    expire_lease(ctx, job_id)
    with ctx.sessions() as session:
        assert not claim_job(session, job_id, "w2/b", 30), "an expired lease is ended before a claim"
        assert end_expired_lease(session, job_id, ctx.settings.max_attempts, UNWATCHED) is JobStatus.QUEUED
        assert claim_job(session, job_id, "w2/b", 30)
    job = load(ctx, job_id)
    assert job.attempts == 2
    assert [h.status for h in job.history] == ["queued", "running", "queued", "running"]


def test_takeover_resumes_from_the_last_checkpoint(ctx: WorkerContext, samples: Path) -> None:
    """A job whose worker died after a snapshot at 8 resumes there and runs only 4 more iterations."""
    job_id = make_job(ctx, samples)
    with ctx.sessions() as session:
        assert claim_job(session, job_id, "dead/a", 30)
    checkpoint = Image.open(samples / "chelsea.jpg").convert("RGB").resize((48, 36))
    ctx.storage.put(snapshot_key(job_id, 8), png_bytes(checkpoint))
    with ctx.sessions() as session:
        add_snapshot(session, job_id, 8, snapshot_key(job_id, 8))
    expire_lease(ctx, job_id)
    assert run_transfer(ctx, job_id, "w2", "w2/b") == "succeeded"
    job = load(ctx, job_id)
    assert job.attempts == 2 and job.iteration == 12
    assert job.iterations_per_second is not None and job.run_seconds is not None
    assert round(job.iterations_per_second * job.run_seconds) == 4, "ran more than requested minus checkpoint"
    assert [h.status for h in job.history] == ["queued", "running", "queued", "running", "succeeded"]


def test_attempts_cap_fails_with_worker_lost(ctx: WorkerContext, samples: Path) -> None:
    """A job whose workers keep dying ends failed / worker_lost once attempts pass the cap."""
    job_id = make_job(ctx, samples)
    for attempt in range(ctx.settings.max_attempts):
        with ctx.sessions() as session:
            end_expired_lease(session, job_id, ctx.settings.max_attempts, UNWATCHED)
            assert claim_job(session, job_id, f"dead/{attempt}", 30)
        expire_lease(ctx, job_id)
    assert run_transfer(ctx, job_id, "w9", "w9/z") == "failed"
    job = load(ctx, job_id)
    assert job.status == "failed" and job.error_code == "worker_lost" and job.attempts == ctx.settings.max_attempts
    assert [h.status for h in job.history][-2:] == ["running", "failed"], "the dead run has its end recorded"


def test_engine_error_becomes_failed_with_a_code(ctx: WorkerContext, samples: Path) -> None:
    """Params the engine refuses (a row written around the API) end failed / invalid_job."""
    job_id = make_job(ctx, samples)
    with ctx.sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        job.params = {**job.params, "content_layers": ["conv9_9"]}
        session.commit()
    assert run_transfer(ctx, job_id, "w1", "w1/a") == "failed"
    job = load(ctx, job_id)
    assert job.error_code == "invalid_job" and "conv9_9" in (job.error_message or "")


def test_a_worker_that_loses_its_lease_stops_without_writing(ctx: WorkerContext, samples: Path) -> None:
    """When another owner takes the job mid-run, the first stops and leaves the row alone."""
    job_id = make_job(ctx, samples, iterations=5000, snapshot_every=0)
    outcome: list[str] = []
    thread = threading.Thread(target=lambda: outcome.append(run_transfer(ctx, job_id, "w1", "w1/a")))
    thread.start()
    deadline = time.monotonic() + 60
    while load(ctx, job_id).iteration < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with ctx.sessions() as session:
        session.execute(update(Job).where(Job.id == job_id).values(lease_owner="thief/x"))
        session.commit()
    thread.join(timeout=30)
    assert outcome == ["lease_lost"]
    job = load(ctx, job_id)
    assert job.status == "running" and job.lease_owner == "thief/x" and job.output_key is None


def test_a_lease_lost_at_the_final_write_leaves_the_new_owner_alone(
    ctx: WorkerContext, samples: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """The lease goes to another owner between the last iteration and the end write: no end is recorded."""
    job_id = make_job(ctx, samples, iterations=3, snapshot_every=0)
    put = ctx.storage.put

    def steal_then_put(key: str, data: bytes) -> None:
        if key == output_key(job_id):
            with ctx.sessions() as session:
                session.execute(update(Job).where(Job.id == job_id).values(lease_owner="thief/x"))
                session.commit()
        put(key, data)

    monkeypatch.setattr(ctx.storage, "put", steal_then_put)
    assert run_transfer(ctx, job_id, "w1", "w1/a") == "lease_lost"
    job = load(ctx, job_id)
    assert job.status == "running" and job.lease_owner == "thief/x" and job.finished_at is None
    assert [h.status for h in job.history] == ["queued", "running"]


def steal_lease(ctx: WorkerContext, job_id: str) -> None:
    """Hand the job's lease to another worker, as a takeover after this one stalled would."""
    with ctx.sessions() as session:
        session.execute(update(Job).where(Job.id == job_id).values(lease_owner="thief/x"))
        session.commit()


def test_a_worker_that_lost_its_lease_writes_no_final_image(ctx: WorkerContext, samples: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Lost between the last iteration and the final image: the new owner's final.png is never overwritten."""
    job_id = make_job(ctx, samples, iterations=3, snapshot_every=0)

    def stylize_then_stall(*args, **kwargs):  # type: ignore[no-untyped-def]
        result = stylize(*args, **kwargs)
        steal_lease(ctx, job_id)  # the worker froze here past its lease; another took the job
        return result

    monkeypatch.setattr(job_runner, "stylize", stylize_then_stall)
    assert run_transfer(ctx, job_id, "w1", "w1/a") == "lease_lost"
    assert not ctx.storage.exists(output_key(job_id))
    assert load(ctx, job_id).lease_owner == "thief/x"


def test_a_worker_that_lost_its_lease_writes_no_snapshot(ctx: WorkerContext, samples: Path) -> None:
    """A snapshot after the lease went elsewhere is neither stored nor listed, and the run is told to stop."""
    job_id = make_job(ctx, samples, iterations=10, snapshot_every=5)
    with ctx.sessions() as session:
        assert claim_job(session, job_id, "w1/a", 30)
    lease = Lease(ctx.sessions, job_id, "w1/a", 30)
    callbacks = JobCallbacks(ctx, lease, iterations=10, start_iteration=0)
    callbacks.on_snapshot(5, Image.new("RGB", (8, 8)))
    assert ctx.storage.exists(snapshot_key(job_id, 5)), "the owner writes its snapshot"
    steal_lease(ctx, job_id)
    callbacks.on_snapshot(10, Image.new("RGB", (8, 8)))
    assert not ctx.storage.exists(snapshot_key(job_id, 10))
    assert [s.iteration for s in load(ctx, job_id).snapshots] == [5]
    assert lease.lost.is_set() and callbacks.should_stop()


def test_a_cancel_that_comes_with_a_shutdown_ends_the_job_canceled(  # type: ignore[no-untyped-def]
    ctx: WorkerContext, samples: Path, monkeypatch
) -> None:
    """SIGTERM stops the run before it looks for the cancel: the hand-back ends it canceled, and it is not requeued."""
    job_id = make_job(ctx, samples, iterations=50, snapshot_every=0)

    def cancel_then_stylize(*args, **kwargs):  # type: ignore[no-untyped-def]
        with ctx.sessions() as session:  # the API's cancel lands while the job runs
            session.execute(update(Job).where(Job.id == job_id).values(cancel_requested=True))
            session.commit()
        return stylize(*args, **kwargs)

    stopping = threading.Event()
    stopping.set()
    monkeypatch.setattr(job_callbacks, "shutdown_requested", stopping)
    monkeypatch.setattr(job_runner, "stylize", cancel_then_stylize)
    requeued: list[str] = []
    assert run_transfer(ctx, job_id, "w1", "w1/a", requeue=requeued.append) == "canceled"
    job = load(ctx, job_id)
    assert job.status == "canceled" and job.finished_at is not None and requeued == []
    assert [h.status for h in job.history] == ["queued", "running", "canceled"]
