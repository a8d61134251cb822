"""One typed settings object, read from IMPASTO_* environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from impasto.shared.webhook_signing import webhook_signing_key

# Image formats the engine reads and is tested with (Pillow's names).
UPLOAD_FORMATS = ("JPEG", "PNG", "WEBP")


class Settings(BaseSettings):
    """Every tunable of a deployment; the defaults are the embedded one-machine set-up."""

    # hide_input_in_errors: a refused value (a malformed webhook secret, a database URL with its
    # password) must not be printed into the logs of the process that refuses to start.
    model_config = SettingsConfigDict(env_prefix="IMPASTO_", extra="ignore", hide_input_in_errors=True)

    # Where the embedded set-up keeps its SQLite file, broker folder and images.
    data_dir: Path = Path("impasto-data")
    # SQL database; default: a SQLite file in data_dir. Production: postgresql+psycopg://...
    database_url: str | None = None
    # Celery broker; default: kombu's filesystem transport in data_dir. Production: redis://...
    broker_url: str | None = None
    # Image store; default: file://data_dir/storage. Production: a store every machine sees.
    storage_url: str | None = None
    # Endpoint of an S3-compatible store for s3://bucket/prefix storage (MinIO, Ceph...); default: AWS S3.
    # Credentials come from the usual AWS variables (AWS_ACCESS_KEY_ID, ...) or the instance's role.
    s3_endpoint_url: str | None = None
    # The API's address as clients reach it: where client commands (submit, status, cancel) find it,
    # and, when set, the base of the absolute URLs in job JSON (else they follow the request).
    url: str = "http://127.0.0.1:8000"

    # Uploads
    max_upload_bytes: int = Field(default=30 * 1024 * 1024, description="whole request body limit")
    max_image_pixels: int = Field(default=40_000_000, description="refuse images above this before decoding")
    max_styles: int = Field(default=4, description="style images per job")
    allowed_image_formats: tuple[str, ...] = Field(
        default=("JPEG", "PNG", "WEBP"),
        description="upload formats accepted, a subset of JPEG, PNG, WEBP (e.g. drop one during a decoder advisory)",
    )
    max_output_pixels: int = Field(
        default=4096 * 4096,
        description="refuse jobs whose output (params.size at the content's aspect) exceeds this; the large size "
        "class ends here, so its workers need the memory for it (shared/size_classes.py)",
    )

    engine_memory_budget_mb: int | None = Field(
        default=None,
        ge=256,
        description="memory one job may use on a CPU worker, MB (default 2048); it decides tiled evaluation and "
        "L-BFGS's history length. A CUDA worker uses the device's free memory",
    )

    # Bounds on what one upload or one job may cost (issue 12: decode memory, job size, snapshots, run time).
    upload_decode_memory_bytes: int = Field(
        default=160 * 1024 * 1024,
        ge=1,
        description="decoded pixels in flight per API process (4 bytes a pixel, a JPEG at 1/8 scale); a decode "
        "waits for its share. One image larger than this decodes alone. Size it to the process's memory limit",
    )
    upload_decode_wait_s: float = Field(
        default=10.0, ge=0, description="how long a submission waits for decode memory before a 503 with Retry-After"
    )
    max_snapshots_per_job: int = Field(
        default=100,
        ge=1,
        description="snapshots one job may store: params with iterations / snapshot_every above this are refused (422)",
    )
    max_run_seconds: float = Field(
        default=4 * 3600.0,
        gt=0,
        description="run time of one attempt of a job; past it the job fails with error code run_time_exceeded",
    )

    # API keys and abuse limits
    rate_limit: str = Field(
        default="600 per minute", description="requests per API key, flask-limiter notation ('100/minute;10/second')"
    )
    rate_limit_storage_url: str | None = Field(
        default=None, description="rate-limit counters; default: the broker's Redis, or memory:// for the embedded one"
    )
    max_active_jobs: int = Field(default=20, description="queued plus running jobs one API key may have at once")
    failed_auth_limit: str = Field(
        default="30 per minute",
        description="failed authentications (a key sent and refused) per client address; past it, every "
        "request with a key from that address gets 429 until the window has room (successes are not counted)",
    )
    api_key_cache_s: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="seconds an API process trusts a key it found valid before looking it up again (0: every "
        "request); a revoked key is refused by every process this long after the revocation at most",
    )
    metrics_token: SecretStr | None = Field(
        default=None, description="when set, GET /metrics needs `Authorization: Bearer <token>` (IMPASTO_METRICS_TOKEN)"
    )
    # What client commands (submit, status, cancel) send; default: data_dir/local-api-key, made by `impasto up`.
    api_key: SecretStr | None = Field(default=None, description="API key the client commands send (IMPASTO_API_KEY)")

    # Reverse proxy (deploy/nginx): 0 when clients reach gunicorn directly, so no X-Forwarded-* header is believed.
    trusted_proxies: int = Field(
        default=0,
        ge=0,
        description="proxies in front of the API that append to X-Forwarded-For (1 behind deploy/nginx alone)",
    )

    idempotency_ttl_s: float = Field(default=24 * 3600, description="how long an Idempotency-Key is remembered")

    # Live job watching (GET /v1/jobs/{id}/events, Prefer: wait)
    sse_heartbeat_s: float = Field(default=15.0, description="time between SSE comment lines that keep proxies open")
    sse_poll_s: float = Field(default=0.5, description="how often an event stream polls SQL without Redis")
    sse_sql_check_s: float = Field(
        default=5.0, description="how often a Redis-fed stream re-reads SQL, in case an event was lost"
    )
    prefer_wait_max_s: float = Field(default=60.0, description="longest a POST /v1/jobs with Prefer: wait=N is held")
    max_event_streams: int = Field(
        default=48,
        ge=1,
        description="event streams plus `Prefer: wait` submissions held at once per API process; each holds "
        "one of its 64 threads, the rest serve other requests",
    )
    max_held_requests_per_key: int = Field(
        default=8,
        ge=1,
        description="event streams plus `Prefer: wait` submissions one API key may hold at once per API "
        "process, so one key cannot take every slot of max_event_streams",
    )
    sse_key_check_s: float = Field(
        default=2.0, description="how often an open event stream re-reads its API key; a revoked key's stream ends"
    )

    # Worker behaviour
    progress_interval_s: float = Field(default=1.0, description="least time between progress writes to SQL")
    event_interval_s: float = Field(default=0.25, description="least time between live progress events")
    cancel_poll_s: float = Field(default=0.5, description="how often a running job checks for a cancel request")
    lease_seconds: float = Field(default=60.0, description="a worker that stops renewing loses its job after this")
    db_retry_s: float = Field(default=300.0, description="how long a worker retries a final write while SQL is down")
    gram_cache_entries: int = Field(default=32, description="style Gram targets a worker keeps across jobs")
    max_attempts: int = Field(default=3, description="takeovers after which a job that kills workers fails")
    device: str = Field(default="auto", description="torch device for the worker: auto, cpu, cuda, cuda:N")
    weights: str = Field(default="original", description="VGG19 weights: original, torchvision or a file path")
    worker_name: str | None = Field(default=None, description="name recorded on jobs; default: Celery's node name")
    worker_metrics_port: int = Field(
        default=0, description="Prometheus port of a worker process (child N of `worker --gpus`: port+N); 0 = off"
    )
    # Operations: worker metrics address, Flower's login, broker-loss detection, RabbitMQ (deploy/README.md).
    worker_metrics_host: str = Field(
        default="127.0.0.1",
        description="address a worker's metrics port binds; 0.0.0.0 (or the pod IP) for a scraper on another host",
    )
    flower_basic_auth: SecretStr | None = Field(
        default=None,
        description="`impasto flower` login, user:password (comma-separated for several); unset: its API answers 401",
    )
    amqp_queue_type: Literal["quorum", "classic"] = Field(
        default="quorum",
        description="RabbitMQ type of the transfer queues (replicated quorum, or classic); fixed once declared",
    )
    events_redis_url: str | None = Field(
        default=None,
        description="Redis for live job events when the broker is not Redis (RabbitMQ); unset there: streams poll SQL",
    )

    # Size classes: a job goes to the queue of the smallest class that holds its output pixels.
    small_job_max_pixels: int = Field(
        default=1024 * 1024,
        description="output pixels up to which a job is small (queue `transfer`); larger ones, up to "
        "max_output_pixels, are large (queue `transfer.large`) and need a worker with more GPU memory",
    )

    # Reconciler
    reconcile_interval_s: float = Field(default=10.0, description="time between reconciler passes")
    enqueue_grace_s: float = Field(default=10.0, description="a new job's message may take this long to appear")
    requeue_after_s: float = Field(
        default=600.0,
        description="re-send a still-queued job's message after this; a shorter value recovers a flushed "
        "broker sooner but adds (harmless, dropped) duplicates for jobs that are merely waiting",
    )
    shutdown_timeout_s: float = Field(
        default=60.0, description="SIGTERM to exit bound for a worker; deploy grace periods must exceed it"
    )

    # Webhooks (shared/webhooks.py): signed POSTs of job events, delivered from the `webhooks` queue.
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="key that signs webhooks, in the Standard Webhooks form whsec_<base64> (`impasto webhook-secret` "
        "prints one); unset: webhooks are refused",
    )
    webhook_allow_private: bool = Field(
        default=False, description="allow webhook URLs on private, loopback or link-local addresses (tests, LANs)"
    )
    webhook_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="deadline of one webhook delivery attempt, all of it: connect, TLS, send, the answer's headers",
    )
    webhook_ca_file: str | None = Field(
        default=None, description="CA bundle that https webhook receivers must chain to; default: certifi's"
    )
    webhook_max_retries: int = Field(default=8, description="retries of a failed webhook delivery before it is dropped")
    webhook_backoff_s: float = Field(default=2.0, description="wait before the first retry; doubles each retry")
    webhook_backoff_max_s: float = Field(default=600.0, description="cap on the wait between webhook retries")
    webhook_concurrency: int = Field(default=8, description="threads of `impasto webhook-worker`")

    # Retention (impasto/background/retention.py, run by the reconciler)
    retention_s: float = Field(
        default=7 * 24 * 3600.0, description="a finished job's images are deleted this long after it finished"
    )

    # Celery
    visibility_timeout_s: int = Field(
        default=6 * 3600,
        description="Redis redelivers an unacked message after this; longer than any job, since "
        "a crashed worker's job is recovered by lease expiry, not by redelivery",
    )

    @field_validator("webhook_secret")
    @classmethod
    def _standard_webhooks_secret(cls, value: SecretStr | None) -> SecretStr | None:
        # Refused when the process starts rather than at the first delivery (receivers would fail).
        if value is not None:
            webhook_signing_key(value.get_secret_value())
        return value

    @field_validator("allowed_image_formats")
    @classmethod
    def _known_formats(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        # The engine is tested with these three only; a deployment may narrow the list, not widen it.
        formats = tuple(value.upper() for value in values)
        unknown = sorted(set(formats) - set(UPLOAD_FORMATS))
        if unknown or not formats:
            raise ValueError(f"allowed_image_formats must be a non-empty subset of {', '.join(UPLOAD_FORMATS)}")
        return formats

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in data_dir."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'impasto.sqlite3').resolve()}"

    def resolved_broker_url(self) -> str:
        """The broker URL, defaulting to the embedded filesystem transport."""
        return self.broker_url or "filesystem://"

    def resolved_storage_url(self) -> str:
        """The storage URL, defaulting to a folder in data_dir."""
        return self.storage_url or f"file://{(self.data_dir / 'storage').resolve()}"

    def resolved_rate_limit_storage_url(self) -> str:
        """Where rate-limit counters live: shared Redis when the broker is Redis, else this process's memory."""
        if self.rate_limit_storage_url:
            return self.rate_limit_storage_url
        broker = self.resolved_broker_url()
        # The embedded set-up serves from one gunicorn process, so in-memory counters are exact there.
        return broker if broker.startswith(("redis://", "rediss://")) else "memory://"

    def local_api_key_path(self) -> Path:
        """The file where `impasto up` leaves its local API key for the client commands."""
        return (self.data_dir / "local-api-key").resolve()

    def broker_folder(self) -> Path:
        """The embedded broker's message folder."""
        return (self.data_dir / "broker").resolve()

    def uses_amqp_broker(self) -> bool:
        """True when the broker is RabbitMQ (or another AMQP 0-9-1 server)."""
        return self.resolved_broker_url().startswith(("amqp://", "amqps://", "pyamqp://"))

    def uses_embedded_broker(self) -> bool:
        """True when messages go through the filesystem transport rather than a server."""
        return self.resolved_broker_url().startswith("filesystem://")


def get_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with keyword overrides (tests pass these)."""
    return Settings(**overrides)
