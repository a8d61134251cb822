"""The job JSON: a Job row as the client sees it, with absolute URLs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import url_for

from api import schemas
from shared.jobs import as_utc
from shared.models import Job
from shared.status import JobStatus

LOSS_TERMS = ("content", "style", "tv", "total")


def utc(moment: datetime | None) -> datetime | None:
    """A SQL datetime as aware UTC (SQLite gives naive values, PostgreSQL the session's zone)."""
    aware = as_utc(moment)
    return aware.astimezone(UTC) if aware is not None else None


def job_json(job: Job) -> dict[str, Any]:
    """The job JSON of ARCHITECTURE.md, plus cancel_requested."""
    return job_model(job).model_dump(mode="json")


def job_model(job: Job) -> schemas.Job:
    """The response model of a job row (needs a request context for its URLs)."""
    self_url = url_for("jobs.get_job", job_id=job.id, _external=True)
    created_at = utc(job.created_at)
    assert created_at is not None
    return schemas.Job(
        id=job.id,
        status=JobStatus(job.status),
        created_at=created_at,
        started_at=utc(job.started_at),
        finished_at=utc(job.finished_at),
        params=job.params,
        progress=progress(job),
        outputs=schemas.Outputs(
            final=url_for("job_files.get_output", job_id=job.id, _external=True) if job.output_key else None,
            intermediates=[
                schemas.Intermediate(
                    iteration=snapshot.iteration,
                    url=url_for(
                        "job_files.get_intermediate", job_id=job.id, iteration=snapshot.iteration, _external=True
                    ),
                )
                for snapshot in job.snapshots
            ],
        ),
        error=schemas.JobError(code=job.error_code, message=job.error_message or "") if job.error_code else None,
        attempts=job.attempts,
        worker=job.worker,
        cancel_requested=job.cancel_requested,
        metrics=schemas.Metrics(
            queue_seconds=job.queue_seconds,
            run_seconds=job.run_seconds,
            iterations_per_second=job.iterations_per_second,
            device=job.device,
        ),
        urls=schemas.JobUrls(
            self=self_url,
            cancel=url_for("jobs.cancel_job", job_id=job.id, _external=True),
            output=url_for("job_files.get_output", job_id=job.id, _external=True),
            # The event stream is served by another module (not this one's scope); its URL
            # is fixed by the HTTP contract, so it is built rather than looked up.
            events=f"{self_url}/events",
        ),
        expired=job.expired_at is not None,
        webhook=job.webhook_url,
        webhook_events_filter=job.webhook_events,
    )


def progress(job: Job) -> schemas.Progress:
    """Iteration, percent, the latest losses and the ETA."""
    percent = round(100.0 * job.iteration / job.iterations, 1) if job.iterations else 0.0
    losses = job.losses
    return schemas.Progress(
        iteration=job.iteration,
        iterations=job.iterations,
        percent=percent,
        loss=schemas.Loss(**{term: losses.get(term) for term in LOSS_TERMS}) if losses else None,
        eta_seconds=job.eta_seconds,
    )
