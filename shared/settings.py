"""One typed settings object, read from IMPASTO_* environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every tunable of a deployment; the defaults are the embedded one-machine set-up."""

    model_config = SettingsConfigDict(env_prefix="IMPASTO_", extra="ignore")

    # Where the embedded set-up keeps its SQLite file, broker folder and images.
    data_dir: Path = Path("impasto-data")
    # SQL database; default: a SQLite file in data_dir. Production: postgresql+psycopg://...
    database_url: str | None = None
    # Celery broker; default: kombu's filesystem transport in data_dir. Production: redis://...
    broker_url: str | None = None
    # Image store; default: file://data_dir/storage. Production: a store every machine sees.
    storage_url: str | None = None
    # Where client commands (submit, status, cancel) find the API.
    url: str = "http://127.0.0.1:8000"

    # Uploads
    max_upload_bytes: int = Field(default=30 * 1024 * 1024, description="whole request body limit")
    max_image_pixels: int = Field(default=40_000_000, description="refuse images above this before decoding")
    max_styles: int = Field(default=4, description="style images per job")

    idempotency_ttl_s: float = Field(default=24 * 3600, description="how long an Idempotency-Key is remembered")

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

    # Celery
    visibility_timeout_s: int = Field(
        default=6 * 3600,
        description="Redis redelivers an unacked message after this; longer than any job, since "
        "a crashed worker's job is recovered by lease expiry, not by redelivery",
    )

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in data_dir."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'impasto.sqlite3').resolve()}"

    def resolved_broker_url(self) -> str:
        """The broker URL, defaulting to the embedded filesystem transport."""
        return self.broker_url or "filesystem://"

    def resolved_storage_url(self) -> str:
        """The storage URL, defaulting to a folder in data_dir."""
        return self.storage_url or f"file://{(self.data_dir / 'storage').resolve()}"

    def broker_folder(self) -> Path:
        """The embedded broker's message folder."""
        return (self.data_dir / "broker").resolve()

    def uses_embedded_broker(self) -> bool:
        """True when messages go through the filesystem transport rather than a server."""
        return self.resolved_broker_url().startswith("filesystem://")


def get_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with keyword overrides (tests pass these)."""
    return Settings(**overrides)
