"""SQL tables: jobs, their status history and their snapshots."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from shared.status import JobStatus


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def new_job_id() -> str:
    """An unguessable job id (UUID4)."""
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    """Declarative base for impasto's tables."""


class Job(Base):
    """One style-transfer job: what was asked, where it stands, and what it produced."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_status_created", "status", "created_at"),
        Index("ix_jobs_status_enqueued", "status", "enqueued_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_job_id)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED.value)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    content_key: Mapped[str] = mapped_column(String(255))
    style_keys: Mapped[list[str]] = mapped_column(JSON)
    queue: Mapped[str] = mapped_column(String(64))
    # When a message for this job was last handed to the broker; the reconciler re-sends
    # queued jobs whose message is older than its grace period (lost to a flushed Redis).
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

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
    attempts: Mapped[int] = mapped_column(Integer, default=0)
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

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
