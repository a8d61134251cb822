"""Telling watchers that a job ended outside a worker's run: cancelled while queued (API), or
taken back from a lost worker and ended by the lease cap or a pending cancel (reconciler, or
the worker that finds the expired lease). A run's own endings are announced by its runner."""

from __future__ import annotations

from impasto.shared.events import EventPublisher
from impasto.shared.models import Job
from impasto.shared.settings import Settings
from impasto.shared.status import JobStatus
from impasto.shared.webhooks import job_error, notify, webhook_target


def announce_end(settings: Settings, events: EventPublisher, job: Job) -> None:
    """The finished job's `status` event on its stream and its `completed` webhook."""
    events.publish(job.id, "status", {"status": job.status, "error": job_error(job)})
    # The webhook id is (job, event, iteration): -1 for a failure, one per job whatever the iteration.
    iteration = -1 if job.status == JobStatus.FAILED.value else job.iteration
    notify(settings, webhook_target(job), job.id, "completed", iteration)
