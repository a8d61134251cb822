"""Run one claimed job: load its images, resume from its checkpoint, run the engine, record the end."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from typing import Any

import torch
from PIL import Image
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from shared.job_endings import announce_end
from shared.jobs import as_utc, claim_job, end_expired_lease, finish_job, hand_back, latest_snapshot, renew_lease
from shared.models import Job
from shared.status import JobStatus
from shared.storage import output_key
from shared.webhooks import WebhookTarget, notify, webhook_target
from worker.context import WorkerContext
from worker.engine import EngineError, Resume, StyleParams, stylize
from worker.engine.params import engine_regions
from worker.job_callbacks import JobCallbacks, png_bytes
from worker.lease_heartbeat import LeaseHeartbeat
from worker.metrics import worker_metrics

log = logging.getLogger(__name__)


def engine_params(params: dict[str, Any]) -> StyleParams:
    """The engine's parameters for a job's stored params (JSON lists become tuples, regions (colour, styles) pairs)."""
    values: dict[str, Any] = {
        k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
        for k, v in params.items()
    }
    if "regions" in values:
        values["regions"] = engine_regions(values["regions"])
    return StyleParams(**values)


def _memory_budget(megabytes: int | None) -> int | None:
    """The engine's CPU memory budget in bytes (None: the engine's default)."""
    return megabytes * 1024 * 1024 if megabytes is not None else None


def _image(ctx: WorkerContext, key: str) -> Image.Image:
    return Image.open(io.BytesIO(ctx.storage.get(key)))


def run_transfer(
    ctx: WorkerContext, job_id: str, worker_name: str, owner: str, requeue: Callable[[str], object] | None = None
) -> str:
    """Claim and run a job; returns what happened ('dropped', or the job's end status)."""
    with ctx.sessions() as session:
        ended = end_expired_lease(session, job_id, ctx.settings.max_attempts)
        if ended in (JobStatus.FAILED, JobStatus.CANCELED):  # its last worker died; this one will not run it
            job = session.get(Job, job_id)
            assert job is not None
            log.warning("job %s: expired lease ended it %s", job_id, ended.value)
            announce_end(ctx.settings, ctx.events, job)
            return ended.value
        if not claim_job(session, job_id, owner, ctx.settings.lease_seconds):
            log.info("job %s: not claimable (finished, canceled or leased elsewhere); message dropped", job_id)
            return "dropped"
        job = session.get(Job, job_id)
        assert job is not None
        # Webhook deliveries are only enqueued here (shared.webhooks.notify); a webhook worker POSTs them.
        webhook = webhook_target(job)
        session.query(Job).filter(Job.id == job_id).update({"worker": worker_name, "device": ctx.device})
        if job.queue_seconds is None:
            queued = (as_utc(job.started_at) - as_utc(job.created_at)).total_seconds()  # type: ignore[operator]
            session.query(Job).filter(Job.id == job_id).update({"queue_seconds": queued})
        session.commit()
        snapshot = latest_snapshot(session, job_id)
        params, content_key, style_keys = job.params, job.content_key, list(job.style_keys)
        mask_keys = job.mask_keys  # label images (spatial control); a resumed run reads them again
        attempt = job.attempts
    ctx.events.publish(job_id, "status", {"status": "running", "worker": worker_name, "attempt": attempt})
    notify(ctx.settings, webhook, job_id, "start")
    started = time.monotonic()
    with LeaseHeartbeat(ctx.sessions, job_id, owner, ctx.settings.lease_seconds) as heartbeat:
        try:
            style_params = engine_params(params)
            resume = Resume(image=_image(ctx, snapshot.key), iteration=snapshot.iteration) if snapshot else None
            if resume is not None and resume.iteration >= style_params.iterations:
                resume = Resume(image=resume.image, iteration=style_params.iterations - 1)
            start = resume.iteration if resume else 0
            callbacks = JobCallbacks(ctx, job_id, owner, style_params.iterations, start, heartbeat.lost)
            callbacks.webhook = webhook
            result = stylize(
                _image(ctx, content_key),
                [_image(ctx, k) for k in style_keys],
                style_params,
                callbacks,
                device=ctx.device,
                weights=ctx.settings.weights,
                resume=resume,
                gram_cache=ctx.gram_cache,
                memory_budget=_memory_budget(ctx.settings.engine_memory_budget_mb),
                mask=_image(ctx, mask_keys["content"]) if mask_keys else None,
                style_masks=[None if k is None else _image(ctx, k) for k in mask_keys.get("styles") or ()] or None
                if mask_keys
                else None,
            )
        except EngineError as exc:
            return _fail(ctx, job_id, owner, "invalid_job", str(exc), webhook)
        except torch.cuda.OutOfMemoryError:
            message = "the GPU ran out of memory; lower `size` or use fewer scales"
            return _fail(ctx, job_id, owner, "out_of_memory", message, webhook)
        except Exception as exc:  # any other failure must end as `failed`, never vanish
            log.exception("job %s failed", job_id)
            return _fail(ctx, job_id, owner, "engine_error", f"{type(exc).__name__}: {exc}", webhook)
    if heartbeat.lost.is_set():
        return _lease_lost(job_id)
    run_seconds = time.monotonic() - started
    speed = (result.iterations - start) / run_seconds if run_seconds > 0 else None
    worker_metrics().record_speed(speed)
    metrics = {
        "run_seconds": run_seconds,
        "iterations_per_second": speed,
        "iteration": result.iterations,
        "losses": result.losses.as_dict() if result.losses else None,
        "eta_seconds": 0.0,
    }
    if result.stopped and callbacks.cancel_requested:
        if not with_db_retry(ctx, lambda s: finish_job(s, job_id, owner, JobStatus.CANCELED, **metrics)):
            return _lease_lost(job_id)
        ctx.events.publish(job_id, "status", {"status": JobStatus.CANCELED.value})
        notify(ctx.settings, webhook, job_id, "completed", result.iterations)
        return JobStatus.CANCELED.value
    if result.stopped and callbacks.run_time_exceeded:
        limit = ctx.settings.max_run_seconds
        message = (
            f"the job ran past the run-time limit of {limit:g} s (IMPASTO_MAX_RUN_SECONDS) at iteration "
            f"{result.iterations} of {style_params.iterations}; lower `iterations` or `size`"
        )
        return _fail(ctx, job_id, owner, "run_time_exceeded", message, webhook)
    if result.stopped:  # shutdown: checkpoint where we are, give the job back, let another worker go on
        if result.iterations > start:
            callbacks.on_snapshot(result.iterations, result.image)
        if not with_db_retry(ctx, lambda s: hand_back(s, job_id, owner)):
            return _lease_lost(job_id)
        if (canceled := _canceled_at_hand_back(ctx, job_id)) is not None:  # a cancel came with the shutdown
            announce_end(ctx.settings, ctx.events, canceled)
            return JobStatus.CANCELED.value
        ctx.events.publish(job_id, "status", {"status": JobStatus.QUEUED.value, "reason": "worker_shutdown"})
        if requeue is not None:
            requeue(job_id)
        log.info("job %s: handed back at iteration %d for shutdown", job_id, result.iterations)
        return "handed_back"
    # As for a snapshot (JobCallbacks.hold_lease): the lease is renewed first, so a worker that lost
    # it never overwrites the final image of the job's new owner.
    if not with_db_retry(ctx, lambda s: renew_lease(s, job_id, owner, ctx.settings.lease_seconds)):
        return _lease_lost(job_id)
    ctx.storage.put(output_key(job_id), png_bytes(result.image))
    if not with_db_retry(
        ctx, lambda s: finish_job(s, job_id, owner, JobStatus.SUCCEEDED, output_key=output_key(job_id), **metrics)
    ):
        return _lease_lost(job_id)
    ctx.events.publish(job_id, "status", {"status": JobStatus.SUCCEEDED.value})
    notify(ctx.settings, webhook, job_id, "completed", result.iterations)
    return JobStatus.SUCCEEDED.value


def _canceled_at_hand_back(ctx: WorkerContext, job_id: str) -> Job | None:
    """The job, if the hand-back ended it canceled (a cancel requested just before the shutdown)."""
    try:
        with ctx.sessions() as session:
            job = session.get(Job, job_id)
    except OperationalError:
        return None  # cannot tell: announced as handed back; SQL still has the truth
    return job if job is not None and job.status == JobStatus.CANCELED.value else None


def with_db_retry(ctx: WorkerContext, write: Callable[[Session], bool]) -> bool:
    """Run a write in a fresh session, retrying while the database is unreachable.

    A finished job's result is in storage already; losing the write to a database restart would
    waste the whole run, so the worker waits for the database (up to db_retry_s) instead.
    """
    deadline = time.monotonic() + ctx.settings.db_retry_s
    while True:
        try:
            with ctx.sessions() as session:
                return write(session)
        except OperationalError as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("database unavailable (%s); retrying the write", exc.orig)
            time.sleep(1.0)


def _fail(
    ctx: WorkerContext, job_id: str, owner: str, code: str, message: str, webhook: WebhookTarget | None = None
) -> str:
    if not with_db_retry(
        ctx, lambda s: finish_job(s, job_id, owner, JobStatus.FAILED, error_code=code, error_message=message)
    ):
        return _lease_lost(job_id)
    ctx.events.publish(
        job_id, "status", {"status": JobStatus.FAILED.value, "error": {"code": code, "message": message}}
    )
    notify(ctx.settings, webhook, job_id, "completed", -1)  # -1: one failure per job, whatever the iteration
    return JobStatus.FAILED.value


def _lease_lost(job_id: str) -> str:
    """The lease went to another owner (or the reconciler) mid-run: write and publish nothing more."""
    log.warning("job %s: lease lost; leaving it to its new owner", job_id)
    return "lease_lost"
