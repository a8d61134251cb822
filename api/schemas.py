"""Pydantic models of what the API answers; job_json builds its output through them and
openapi publishes their JSON schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from shared.job_params import JobParams
from shared.status import JobStatus


class Loss(BaseModel):
    """The latest losses the worker reported."""

    content: float | None
    style: float | None
    tv: float | None
    total: float | None


class Progress(BaseModel):
    """How far a job has got."""

    iteration: int
    iterations: int
    percent: float
    loss: Loss | None
    eta_seconds: float | None


class Intermediate(BaseModel):
    """One stored snapshot."""

    iteration: int
    url: str


class Outputs(BaseModel):
    """Where a job's images can be downloaded."""

    final: str | None = Field(description="the final PNG; null until the job succeeds")
    intermediates: list[Intermediate]


class JobError(BaseModel):
    """Why a job failed."""

    code: str
    message: str


class Metrics(BaseModel):
    """Timings and the device a job ran on."""

    queue_seconds: float | None
    run_seconds: float | None
    iterations_per_second: float | None
    device: str | None


class JobUrls(BaseModel):
    """Absolute URLs of the job's resources."""

    self: str
    cancel: str
    output: str
    events: str


class Job(BaseModel):
    """A style-transfer job as the API shows it."""

    id: str
    status: JobStatus
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    params: dict[str, Any] = Field(description="the job's JobParams, defaults filled in")
    progress: Progress
    outputs: Outputs
    error: JobError | None
    attempts: int
    worker: str | None
    cancel_requested: bool = Field(description="a cancel was asked for; a running job stops soon")
    metrics: Metrics
    urls: JobUrls
    expired: bool = Field(False, description="images deleted after the retention period; their URLs answer 410")
    webhook: str | None = Field(None, description="URL that gets signed job events; null: none")
    webhook_events_filter: list[str] | None = Field(None, description="the events the webhook gets")


class JobList(BaseModel):
    """One page of jobs, newest first."""

    jobs: list[Job]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last")


class ErrorDetail(BaseModel):
    """One invalid field."""

    field: str
    message: str


class ErrorInfo(BaseModel):
    """What went wrong."""

    code: str
    message: str
    details: list[ErrorDetail] | None = None
    request_id: str | None = Field(None, description="on 500s: quote it when reporting the problem")


class ErrorBody(BaseModel):
    """Every error response."""

    error: ErrorInfo


class Readiness(BaseModel):
    """The readiness probe's answer."""

    status: str = Field(description="ready or unavailable")
    checks: dict[str, str] = Field(description="database and broker: ok or down")
    error: ErrorInfo | None = None


class Liveness(BaseModel):
    """The liveness probe's answer."""

    status: str


class JobSubmission(BaseModel):
    """The multipart form of POST /v1/jobs (documentation: the view reads the form itself)."""

    content: bytes = Field(description="the content image: JPEG, PNG or WebP")
    style: list[bytes] = Field(min_length=1, description="one or more style images; repeat the field")
    params: JobParams | None = Field(
        None,
        description='a JSON object string with exact types (no "64" for 64, no 1 for true); '
        "omitted keys, or null, take defaults",
    )
    webhook: str | None = Field(None, description="http(s) URL that gets signed start/snapshot/completed events")
    webhook_events_filter: list[str] | None = Field(
        None, description="events the webhook gets: start, snapshot, completed (default: all); repeat or comma-separate"
    )
