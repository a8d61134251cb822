"""The job JSON: a Job row as the client sees it, with absolute URLs.

The URLs start with IMPASTO_URL when it is set (the API's address as clients reach it), never
with the request's Host header, which any client may craft; only without it do they follow the
request, as a server that knows no public name of its own must.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import url_for

from impasto.api import schemas
from impasto.api.context import current_impasto
from impasto.shared.jobs import as_utc
from impasto.shared.models import Job
from impasto.shared.status import JobStatus

LOSS_TERMS = ("content", "style", "tv", "total")


def utc(moment: datetime | None) -> datetime | None:
    """A SQL datetime as aware UTC (SQLite gives naive values, PostgreSQL the session's zone)."""
    aware = as_utc(moment)
    return aware.astimezone(UTC) if aware is not None else None


def external_url(endpoint: str, **values: Any) -> str:
    """The absolute URL of an endpoint: on IMPASTO_URL when it is set, else on the request's own URL."""
    settings = current_impasto().settings
    # model_fields_set: set from the environment or by the caller, not the field's default.
    if "url" in settings.model_fields_set:
        return settings.url.rstrip("/") + url_for(endpoint, **values)
    return url_for(endpoint, **values, _external=True)


def job_json(job: Job) -> dict[str, Any]:
    """The job JSON of ARCHITECTURE.md, plus cancel_requested."""
    return job_model(job).model_dump(mode="json")


def job_model(job: Job) -> schemas.Job:
    """The response model of a job row (needs a request context for its URLs)."""
    self_url = external_url("jobs.get_job", job_id=job.id)
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
            final=external_url("job_files.get_output", job_id=job.id) if job.output_key else None,
            intermediates=[
                schemas.Intermediate(
                    iteration=snapshot.iteration,
                    url=external_url("job_files.get_intermediate", job_id=job.id, iteration=snapshot.iteration),
                )
                for snapshot in job.snapshots
            ],
        ),
        inputs=schemas.Inputs(
            content=external_url("job_files.get_content_input", job_id=job.id),
            style=[
                external_url("job_files.get_style_input", job_id=job.id, index=index)
                for index in range(len(job.style_keys))
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
            cancel=external_url("jobs.cancel_job", job_id=job.id),
            output=external_url("job_files.get_output", job_id=job.id),
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
