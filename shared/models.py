"""SQL tables: API keys, jobs, their status history and their snapshots, idempotency keys."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from impasto.shared.status import JobStatus


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def new_job_id() -> str:
    """An unguessable job id (UUID4)."""
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    """Declarative base for impasto's tables."""


class ApiKey(Base):
    """A client's API key: its public id and a hash of the whole key, never the key itself."""

    __tablename__ = "api_keys"

    # The non-secret part of the key (imp_<id>_<secret>), so a request's key is found by primary key.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    secret_hash: Mapped[str] = mapped_column(String(64))  # sha256 hex of the whole key (see impasto.shared.api_keys)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Job(Base):
    """One style-transfer job: what was asked, where it stands, and what it produced."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_status_created", "status", "created_at"),
        Index("ix_jobs_status_enqueued", "status", "enqueued_at"),
        Index("ix_jobs_owner_created", "owner_key_id", "created_at"),
        Index("ix_jobs_owner_status", "owner_key_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_job_id)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED.value)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    content_key: Mapped[str] = mapped_column(String(255))
    style_keys: Mapped[list[str]] = mapped_column(JSON)
    # Label images for spatial control: {"content": key, "styles": [key or null per style]}; NULL: none.
    mask_keys: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    queue: Mapped[str] = mapped_column(String(64))
    # The API key that submitted the job; every API query is scoped to it. NULL for jobs made
    # before keys existed (no key sees those) and for jobs made outside the API (tests, tools).
    owner_key_id: Mapped[str | None] = mapped_column(ForeignKey("api_keys.id", name="fk_jobs_owner_key_id_api_keys"))
    # When a message for this job was last handed to the broker; the reconciler re-sends
    # queued jobs whose message is older than its grace period (lost to a flushed Redis).
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    # Webhook: where job events are POSTed (shared/webhooks.py) and which ones; NULL: none.
    webhook_url: Mapped[str | None] = mapped_column(Text)
    webhook_events: Mapped[list[str] | None] = mapped_column(JSON)
    # When the retention pass deleted the job's images; the row stays, its image URLs answer 410.
    expired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    # Progress, written by the worker (throttled).
    iteration: Mapped[int] = mapped_column(Integer, default=0)
    iterations: Mapped[int] = mapped_column(Integer)
    losses: Mapped[dict[str, float] | None] = mapped_column(JSON)
    eta_seconds: Mapped[float | None] = mapped_column(Float)

    # Outcome
    output_key: Mapped[str | None] = mapped_column(String(255))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)

    # Who runs it
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # claims: one per run, hand-backs included
    # Runs whose worker died (lease expired); the max_attempts cap applies to these, so a job
    # handed back at every deploy is not failed for it.
    lost_runs: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    worker: Mapped[str | None] = mapped_column(String(255))
    device: Mapped[str | None] = mapped_column(String(64))
    lease_owner: Mapped[str | None] = mapped_column(String(255))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)

    # Metrics
    queue_seconds: Mapped[float | None] = mapped_column(Float)
    run_seconds: Mapped[float | None] = mapped_column(Float)
    iterations_per_second: Mapped[float | None] = mapped_column(Float)

    history: Mapped[list[JobStatusChange]] = relationship(
        back_populates="job", order_by="JobStatusChange.id", cascade="all, delete-orphan"
    )
    snapshots: Mapped[list[JobSnapshot]] = relationship(
        back_populates="job", order_by="JobSnapshot.iteration", cascade="all, delete-orphan"
    )


class JobStatusChange(Base):
    """One transition of a job's status: the audit trail."""

    __tablename__ = "job_status_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    worker: Mapped[str | None] = mapped_column(String(255))
    attempt: Mapped[int] = mapped_column(Integer, default=0)

    job: Mapped[Job] = relationship(back_populates="history")


class JobSnapshot(Base):
    """An intermediate image of a job; the newest is also its checkpoint."""

    __tablename__ = "job_snapshots"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    iteration: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    job: Mapped[Job] = relationship(back_populates="snapshots")


class IdempotencyKey(Base):
    """A client's Idempotency-Key on POST /v1/jobs: the request it named and the job it made."""

    __tablename__ = "idempotency_keys"

    # "<api key id>:<client's Idempotency-Key>", so two API keys' "abc" are different records.
    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
