"""The shapes the API answers and accepts, as typed dictionaries (the JSON as it comes; fields may be added)."""

from __future__ import annotations

from typing import Any, Literal, TypedDict

JobStatus = Literal["queued", "running", "succeeded", "failed", "canceled"]
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "canceled"})
WebhookEvent = Literal["start", "snapshot", "completed"]


class JobParams(TypedDict, total=False):
    """Parameters of a job (README's table); omitted keys take the server's defaults."""

    iterations: int
    size: int
    style_scale: float
    content_weight: float
    style_weight: float
    tv_weight: float
    content_layers: list[str]
    style_layers: list[str]
    style_layer_weights: list[float] | None
    optimizer: Literal["lbfgs", "adam"]
    learning_rate: float | None
    init: Literal["content", "noise"]
    seed: int
    pooling: Literal["max", "avg"]
    style_blend_weights: list[float] | None
    preserve_color: bool
    scales: list[float]
    pyramid_above: int
    snapshot_every: int
    precision: Literal["fp32", "bf16"]
    tile: int | None
    style_loss: Literal["gram", "w2"]
    color_transfer: Literal["none", "before", "after"]
    color_transfer_method: Literal["pca", "cholesky", "sym"]
    style_layer_weights_per_style: list[list[float]] | None
    style_scales: list[float] | None
    regions: dict[str, dict[str, float]] | None


class Loss(TypedDict):
    """The latest losses."""

    content: float | None
    style: float | None
    tv: float | None
    total: float | None


class Progress(TypedDict):
    """How far a job has got."""

    iteration: int
    iterations: int
    percent: float
    loss: Loss | None
    eta_seconds: float | None


class Intermediate(TypedDict):
    """One stored snapshot."""

    iteration: int
    url: str


class Outputs(TypedDict):
    """Where the job's images are."""

    final: str | None
    intermediates: list[Intermediate]


class Inputs(TypedDict):
    """Where the job's input images are, as they were uploaded."""

    content: str
    style: list[str]


class JobError(TypedDict):
    """Why a job failed."""

    code: str
    message: str


class Job(TypedDict):
    """A job as GET /v1/jobs/{id} answers it."""

    id: str
    status: JobStatus
    created_at: str
    started_at: str | None
    finished_at: str | None
    params: dict[str, Any]
    progress: Progress
    outputs: Outputs
    inputs: Inputs
    error: JobError | None
    attempts: int
    worker: str | None
    cancel_requested: bool
    metrics: dict[str, Any]
    urls: dict[str, str]
    expired: bool
    webhook: str | None
    webhook_events_filter: list[str] | None


class JobPage(TypedDict):
    """One page of GET /v1/jobs, newest first."""

    jobs: list[Job]
    next_cursor: str | None
