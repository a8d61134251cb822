"""Pydantic models of what the API answers; job_json builds its output through them and
openapi publishes their JSON schemas."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.json_schema import SkipJsonSchema

from impasto.shared.job_params import JobParams
from impasto.shared.status import JobStatus
from impasto.shared.webhooks import EVENTS_FILTER_PATTERN, MAX_URL_LENGTH, URL_PATTERN


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


class Inputs(BaseModel):
    """Where a job's input images can be downloaded, as they were uploaded."""

    content: str
    style: list[str] = Field(description="one per style image, in the order they were sent")


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
    inputs: Inputs
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


class LoginRequest(BaseModel):
    """The JSON body of POST /web/login."""

    model_config = ConfigDict(extra="forbid", strict=True)

    token: str = Field(min_length=1, description="the one-time token from the login link `impasto up` printed")


class LoginAnswer(BaseModel):
    """What POST /web/login gives for a valid token."""

    api_key: str = Field(description="the local stack's API key")


# What shared/webhooks.py accepts, as far as a schema can say (not: that the host resolves to public addresses).
WebhookUrlText = Annotated[str, StringConstraints(max_length=MAX_URL_LENGTH, pattern=URL_PATTERN)]
EventsFilterText = Annotated[str, StringConstraints(pattern=EVENTS_FILTER_PATTERN)]


def without_default(format_name: str | None = None) -> Callable[[dict[str, Any]], None]:
    """A json_schema_extra without the field's `default: null` (an absent form field has no value), with a format."""

    def edit(schema: dict[str, Any]) -> None:
        schema.pop("default", None)
        if format_name is not None:
            schema["format"] = format_name

    return edit


class JobSubmission(BaseModel):
    """The multipart form of POST /v1/jobs (documentation: the view reads the form itself).

    No other field is accepted. Form fields are text: `webhook` is absent or a URL, never null.
    The style count's maxItems is the deployment's IMPASTO_MAX_STYLES (openapi.deployment_limits).
    """

    model_config = ConfigDict(
        extra="forbid",
        # OpenAPI 3.1 (JSON Schema 2020-12): a filter without a webhook is refused, and so are masks
        # without the params that name their regions.
        json_schema_extra={
            "dependentRequired": {"webhook_events_filter": ["webhook"], "mask": ["params"], "style_mask": ["mask"]}
        },
    )

    content: bytes = Field(description="the content image: JPEG, PNG or WebP")
    style: list[bytes] = Field(min_length=1, description="one or more style images; repeat the field")
    params: JobParams | None = Field(
        None,
        description='a JSON object string with exact types (no "64" for 64, no 1 for true); '
        "omitted keys, or null, take defaults",
    )
    mask: bytes | SkipJsonSchema[None] = Field(
        None,
        description="spatial control: the content's label image (PNG), each region one exact colour, every "
        "colour named in params.regions; resized to the content with nearest-neighbour; counts toward the "
        "job's pixels",
        json_schema_extra=without_default("binary"),
    )
    style_mask: list[bytes] | SkipJsonSchema[None] = Field(
        None,
        description="optional label images of the styles, one per style part in order (an empty part for a "
        "style without one): a region takes its colour's part of the style; with params.regions and mask",
        json_schema_extra=without_default(),
    )
    webhook: WebhookUrlText | SkipJsonSchema[None] = Field(
        None,  # absent, never null: None is left out of the schema
        description="http(s) URL that gets signed start/snapshot/completed events; its host must resolve "
        "to public addresses (unless the server allows private ones); leave the field out for none",
        json_schema_extra=without_default("uri"),
    )
    webhook_events_filter: list[EventsFilterText] | SkipJsonSchema[None] = Field(
        None,
        description="events the webhook gets: start, snapshot, completed (default: all); "
        "repeat the field or comma-separate, without spaces",
        json_schema_extra=without_default(),
    )
