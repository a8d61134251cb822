"""The reconciler: SQL is the truth, the broker only a hint. Re-sends queued jobs whose message
was lost, and hands back running jobs whose worker stopped renewing its lease. Safe to run in
several copies: every action is a conditional UPDATE that only one copy can win."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

import redis
from celery import Celery
from sqlalchemy import or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from impasto.background.broker_loss import BrokerSentinel
from impasto.background.retention import purge_expired_keys
from impasto.shared.enqueue import send_transfer
from impasto.shared.events import EventPublisher
from impasto.shared.job_endings import JobWatchers
from impasto.shared.job_records import take_for_resend
from impasto.shared.jobs import end_expired_lease
from impasto.shared.models import Job, utcnow
from impasto.shared.settings import Settings
from impasto.shared.status import JobStatus

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    """What one pass did."""

    resent: list[str] = field(default_factory=list)  # queued jobs whose message was sent again
    handed_back: list[str] = field(default_factory=list)  # expired leases, back to queued
    failed: list[str] = field(default_factory=list)  # expired leases past the attempts cap
    canceled: list[str] = field(default_factory=list)  # expired leases of jobs with a pending cancel
    purged_keys: int = 0  # expired Idempotency-Key records deleted
    unsent: list[str] = field(default_factory=list)  # re-sends the broker refused (down): tried again later
    broker_lost: bool = False  # the broker was seen flushed or restarted: every queued job was re-sent


def broker_lost(sentinel: BrokerSentinel | None) -> bool:
    """Whether the broker lost its messages since the last pass (False when it cannot be told or reached)."""
    if sentinel is None:
        return False
    try:
        return sentinel.lost_since_last_look()
    except redis.RedisError as exc:  # a broker that is down now is looked at again next pass
        log.warning("broker sentinel not read: %s", exc)
        return False


def reconcile_once(
    sessions: sessionmaker[Session],
    celery: Celery,
    settings: Settings,
    events: EventPublisher | None = None,
    sentinel: BrokerSentinel | None = None,
) -> ReconcileReport:
    """One pass over jobs that the broker may have lost; `events` tells watchers of the jobs it ends,
    `sentinel` notices a flushed or restarted broker (then every queued job is re-sent at once)."""
    events = events if events is not None else EventPublisher(None)
    report = ReconcileReport(broker_lost=broker_lost(sentinel))
    try:
        _reconcile_jobs(sessions, celery, settings, events, report)
    except Exception:
        if report.broker_lost and sentinel is not None:
            sentinel.forget()  # the loss is reported again next pass, and those re-sends retried
        raise
    if report.broker_lost and sentinel is not None and report.unsent:
        sentinel.forget()
    try:
        with sessions() as session:  # a lookup deletes the key it finds expired; these are the rest
            report.purged_keys = purge_expired_keys(session)
    except SQLAlchemyError as exc:  # housekeeping only: the jobs' work above is done, retention still runs
        log.warning("expired idempotency keys not purged: %s", exc)
    return report


def _reconcile_jobs(
    sessions: sessionmaker[Session], celery: Celery, settings: Settings, events: EventPublisher, report: ReconcileReport
) -> None:
    now = utcnow()
    watchers = JobWatchers(events, celery)
    with sessions() as session:
        expired = (
            session.execute(select(Job.id).where(Job.status == JobStatus.RUNNING.value, Job.lease_expires_at < now))
            .scalars()
            .all()
        )
        for job_id in expired:
            # None: another reconciler, or a worker claiming the job, took it back first
            # (a job it ends, failed at the attempts cap or canceled, is announced by end_job)
            ended = end_expired_lease(session, job_id, settings.max_attempts, watchers)
            if ended is JobStatus.QUEUED:
                report.handed_back.append(job_id)
                watchers.job_requeued(job_id, "worker_lost")
            elif ended is not None:  # failed at the attempts cap, or canceled: nobody will run it again
                (report.failed if ended is JobStatus.FAILED else report.canceled).append(job_id)
        # After a broker loss every queued job's message is gone, however recently it was sent.
        cutoff = now if report.broker_lost else now - timedelta(seconds=settings.requeue_after_s)
        created_before = now if report.broker_lost else now - timedelta(seconds=settings.enqueue_grace_s)
        stale = session.execute(
            select(Job.id, Job.queue).where(
                Job.status == JobStatus.QUEUED.value,
                Job.cancel_requested.is_(False),
                or_(Job.enqueued_at.is_(None), Job.enqueued_at < cutoff),
                Job.created_at < created_before,
            )
        ).all()
        resend = []
        for job_id, queue in stale:
            if job_id in report.handed_back:  # sent below, once
                continue
            if take_for_resend(session, job_id, cutoff, now):
                resend.append((job_id, queue))
        for job_id in report.handed_back:
            resend.append((job_id, session.get(Job, job_id).queue))  # type: ignore[union-attr]
    for job_id, queue in resend:
        if not send_transfer(celery, job_id, queue):
            report.unsent.append(job_id)
        elif job_id not in report.handed_back:
            report.resent.append(job_id)
