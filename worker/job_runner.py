"""Run one job in three steps: claim it (with a lease), run the engine, record how the run ended."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from PIL import Image
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from impasto.shared.job_records import record_start
from impasto.shared.jobs import claim_job, end_expired_lease, finish_job, hand_back, latest_snapshot
from impasto.shared.models import Job
from impasto.shared.previews import encode_preview, preview_key
from impasto.shared.status import JobStatus
from impasto.shared.storage import output_key
from impasto.shared.webhooks import WebhookTarget, webhook_target
from impasto.worker.context import WorkerContext
from impasto.worker.engine import EngineError, Result, Resume, StyleParams, stylize
from impasto.worker.engine.imaging import png_bytes
from impasto.worker.engine.params import engine_regions
from impasto.worker.job_callbacks import JobCallbacks
from impasto.worker.lease import Lease
from impasto.worker.metrics import worker_metrics

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Claim:
    """A run this worker holds the lease of, and what it read of the job at the claim."""

    lease: Lease
    params: dict[str, Any]
    content_key: str
    style_keys: list[str]
    checkpoint: tuple[str, int] | None  # (storage key, iteration) of the newest snapshot, where the run resumes
    webhook: WebhookTarget | None
    mask_keys: dict[str, Any] | None = None  # label images (spatial control); a resumed run reads them again

    @property
    def job_id(self) -> str:
        """The claimed job."""
        return self.lease.job_id


@dataclass(frozen=True)
class Run:
    """What the engine left: its result, or the failure (code, message) that ended the run."""

    result: Result | None = None
    callbacks: JobCallbacks | None = None
    failure: tuple[str, str] | None = None
    start_iteration: int = 0
    seconds: float = 0.0


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
    """Claim and run a job; returns what happened ('dropped', 'lease_lost', 'handed_back', or the job's end status)."""
    claimed = claim(ctx, job_id, worker_name, owner)
    if isinstance(claimed, str):
        return claimed
    with claimed.lease:  # renewed in the background while the engine runs
        ran = run(ctx, claimed)
    return record(ctx, claimed, ran, requeue)


def claim(ctx: WorkerContext, job_id: str, worker_name: str, owner: str) -> Claim | str:
    """Take the job with a lease and announce the run; or say why not ('dropped', or the end an expired lease made)."""
    with ctx.sessions() as session:
        ended = end_expired_lease(session, job_id, ctx.settings.max_attempts, ctx.watchers)
        if ended in (JobStatus.FAILED, JobStatus.CANCELED):  # its last worker died; this one will not run it
            log.warning("job %s: expired lease ended it %s", job_id, ended.value)
            return ended.value
        if not claim_job(session, job_id, owner, ctx.settings.lease_seconds):
            log.info("job %s: not claimable (finished, canceled or leased elsewhere); message dropped", job_id)
            return "dropped"
        record_start(session, job_id, owner, worker_name, ctx.device)
        job = session.get_one(Job, job_id, populate_existing=True)
        snapshot = latest_snapshot(session, job_id)
    ctx.watchers.job_started(job, worker_name)
    return Claim(
        lease=Lease(ctx.sessions, job_id, owner, ctx.settings.lease_seconds),
        params=job.params,
        content_key=job.content_key,
        style_keys=list(job.style_keys),
        checkpoint=(snapshot.key, snapshot.iteration) if snapshot else None,
        webhook=webhook_target(job),
        mask_keys=job.mask_keys,
    )


def run(ctx: WorkerContext, claimed: Claim) -> Run:
    """Run the engine from the job's checkpoint (if any); every exception becomes a failure with a code."""
    started = time.monotonic()
    masks = claimed.mask_keys
    try:
        style_params = engine_params(claimed.params)
        resume = None
        if claimed.checkpoint is not None:
            key, iteration = claimed.checkpoint
            # A checkpoint at the last iteration still runs one, so the run ends with a result.
            resume = Resume(image=_image(ctx, key), iteration=min(iteration, style_params.iterations - 1))
        start = resume.iteration if resume else 0
        callbacks = JobCallbacks(ctx, claimed.lease, style_params.iterations, start, claimed.webhook)
        result = stylize(
            _image(ctx, claimed.content_key),
            [_image(ctx, k) for k in claimed.style_keys],
            style_params,
            callbacks,
            device=ctx.device,
            weights=ctx.settings.weights,
            resume=resume,
            gram_cache=ctx.gram_cache,
            memory_budget=_memory_budget(ctx.settings.engine_memory_budget_mb),
            mask=_image(ctx, masks["content"]) if masks else None,
            style_masks=[None if k is None else _image(ctx, k) for k in masks.get("styles") or ()] or None
            if masks
            else None,
        )
    except EngineError as exc:
        return Run(failure=("invalid_job", str(exc)))
    except torch.cuda.OutOfMemoryError:
        return Run(failure=("out_of_memory", "the GPU ran out of memory; lower `size` or use fewer scales"))
    except Exception as exc:  # any other failure must end as `failed`, never vanish
        log.exception("job %s failed", claimed.job_id)
        return Run(failure=("engine_error", f"{type(exc).__name__}: {exc}"))
    return Run(result, callbacks, start_iteration=start, seconds=time.monotonic() - started)


def record(ctx: WorkerContext, claimed: Claim, ran: Run, requeue: Callable[[str], object] | None = None) -> str:
    """Write how the run ended: failed, canceled, past its time limit, handed back at a shutdown, or succeeded."""
    if ran.failure is not None:
        code, message = ran.failure
        return _end(ctx, claimed, JobStatus.FAILED, error_code=code, error_message=message)
    if claimed.lease.lost.is_set():
        return _lease_lost(claimed.job_id)
    result, callbacks = ran.result, ran.callbacks
    assert result is not None and callbacks is not None
    speed = (result.iterations - ran.start_iteration) / ran.seconds if ran.seconds > 0 else None
    worker_metrics().record_speed(speed)
    metrics = {
        "run_seconds": ran.seconds,
        "iterations_per_second": speed,
        "iteration": result.iterations,
        "losses": result.losses.as_dict() if result.losses else None,
        "eta_seconds": 0.0,
    }
    if result.stopped and callbacks.cancel_requested:
        return _end(ctx, claimed, JobStatus.CANCELED, **metrics)
    if result.stopped and callbacks.run_time_exceeded:
        message = (
            f"the job ran past the run-time limit of {ctx.settings.max_run_seconds:g} s (IMPASTO_MAX_RUN_SECONDS) "
            f"at iteration {result.iterations} of {callbacks.iterations}; lower `iterations` or `size`"
        )
        return _end(ctx, claimed, JobStatus.FAILED, error_code="run_time_exceeded", error_message=message)
    if result.stopped:  # shutdown: checkpoint where we are, give the job back, let another worker go on
        if result.iterations > ran.start_iteration:
            callbacks.on_snapshot(result.iterations, result.image)
        return _hand_back(ctx, claimed, result.iterations, requeue)
    # As for a snapshot (JobCallbacks.hold_lease): the lease is renewed first, so a worker that lost
    # it never overwrites the final image of the job's new owner.
    if not with_db_retry(ctx, claimed.lease.renew_in):
        return _lease_lost(claimed.job_id)
    ctx.storage.put(output_key(claimed.job_id), png_bytes(result.image))
    ctx.storage.put(preview_key(output_key(claimed.job_id)), encode_preview(result.image))  # before the job says done
    return _end(ctx, claimed, JobStatus.SUCCEEDED, output_key=output_key(claimed.job_id), **metrics)


def _end(ctx: WorkerContext, claimed: Claim, status: JobStatus, **values: Any) -> str:
    """End the run (row, history, event, webhook: impasto.shared.jobs.end_job), or find the lease gone."""
    owner = claimed.lease.owner
    if not with_db_retry(ctx, lambda s: finish_job(s, claimed.job_id, owner, status, ctx.watchers, **values)):
        return _lease_lost(claimed.job_id)
    return status.value


def _hand_back(ctx: WorkerContext, claimed: Claim, iteration: int, requeue: Callable[[str], object] | None) -> str:
    """Give the job back to the queue for another worker; a cancel that came with the shutdown ends it instead."""
    status = with_db_retry(ctx, lambda s: hand_back(s, claimed.job_id, claimed.lease.owner, ctx.watchers))
    if status is None:
        return _lease_lost(claimed.job_id)
    if status is JobStatus.CANCELED:
        return status.value
    ctx.watchers.job_requeued(claimed.job_id, "worker_shutdown")
    if requeue is not None:
        requeue(claimed.job_id)
    log.info("job %s: handed back at iteration %d for shutdown", claimed.job_id, iteration)
    return "handed_back"


def with_db_retry(ctx: WorkerContext, write: Callable[[Session], T]) -> T:
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


def _lease_lost(job_id: str) -> str:
    """The lease went to another owner (or the reconciler) mid-run: write and publish nothing more."""
    log.warning("job %s: lease lost; leaving it to its new owner", job_id)
    return "lease_lost"
