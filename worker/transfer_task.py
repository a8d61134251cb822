"""The Celery task `impasto.transfer(job_id)`: takes ids, never ORM objects."""

from __future__ import annotations

import os
import time
import uuid

from celery import Task, shared_task

from impasto.shared.enqueue import send_transfer
from impasto.shared.task_names import TRANSFER_QUEUE, TRANSFER_TASK
from impasto.worker.context import worker_context
from impasto.worker.job_runner import run_transfer
from impasto.worker.metrics import worker_metrics


@shared_task(name=TRANSFER_TASK, bind=True, ignore_result=True)
def transfer(self: Task, job_id: str) -> str:
    """Claim the job and run it to an end state (or drop a duplicate delivery)."""
    ctx = worker_context(self.app)
    worker_name = ctx.settings.worker_name or self.request.hostname or "worker"
    # The lease owner is unique per run, so a restarted worker with the same name is a new owner.
    owner = f"{worker_name}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
    queue = self.request.delivery_info.get("routing_key") if self.request.delivery_info else None
    metrics = worker_metrics()
    started = time.monotonic()
    outcome = "error"  # what the metrics say if run_transfer raises (SQL down at the claim, say)
    try:
        with metrics.gpu_memory(ctx.device):
            outcome = run_transfer(
                ctx,
                job_id,
                worker_name,
                owner,
                requeue=lambda jid: send_transfer(self.app, jid, queue or TRANSFER_QUEUE),
            )
    finally:
        metrics.record_run(outcome, time.monotonic() - started)
    return outcome
