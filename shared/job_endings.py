"""Who hears of a job's run: its live event stream and its webhook. Every end, whatever made it (the
worker's own, a cancel while queued, an expired lease at the cap, a hand-back with a cancel pending),
is written by impasto.shared.jobs.end_job, which tells these watchers once the end is committed."""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery

from impasto.shared.enqueue import send_webhook
from impasto.shared.events import EventPublisher
from impasto.shared.models import Job
from impasto.shared.status import JobStatus
from impasto.shared.webhooks import WebhookTarget, job_error, webhook_target


@dataclass(frozen=True)
class JobWatchers:
    """Tells a job's watchers of its run: events on its stream, webhook deliveries through the given Celery app."""

    events: EventPublisher
    celery: Celery

    def job_started(self, job: Job, worker: str) -> None:
        """A worker runs the job now: the `running` event and the `start` webhook."""
        running = {"status": JobStatus.RUNNING.value, "worker": worker, "attempt": job.attempts}
        self.events.publish(job.id, "status", running)
        send_webhook(self.celery, webhook_target(job), job.id, "start")

    def snapshot_taken(self, job_id: str, target: WebhookTarget | None, iteration: int) -> None:
        """A snapshot is stored and listed: its event and its webhook."""
        self.events.publish(job_id, "snapshot", {"iteration": iteration})
        send_webhook(self.celery, target, job_id, "snapshot", iteration)

    def job_requeued(self, job_id: str, reason: str) -> None:
        """The job is back in the queue (its worker shut down, or was lost): the `queued` event."""
        self.events.publish(job_id, "status", {"status": JobStatus.QUEUED.value, "reason": reason})

    def job_ended(self, job: Job) -> None:
        """The finished job's `status` event on its stream and its `completed` webhook."""
        self.events.publish(job.id, "status", {"status": job.status, "error": job_error(job)})
        # The webhook id is (job, event, iteration): -1 for a failure, one per job whatever the iteration.
        iteration = -1 if job.status == JobStatus.FAILED.value else job.iteration
        send_webhook(self.celery, webhook_target(job), job.id, "completed", iteration)
