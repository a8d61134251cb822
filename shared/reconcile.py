"""The reconciler: SQL is the truth, the broker only a hint. Re-sends queued jobs whose message
was lost, and hands back running jobs whose worker stopped renewing its lease. Safe to run in
several copies: every action is a conditional UPDATE that only one copy can win."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

import click
from celery import Celery
from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from shared.celery_app import make_celery
from shared.database import make_engine, make_sessionmaker
from shared.enqueue import send_transfer
from shared.events import EventPublisher, make_publisher
from shared.idempotency import purge_expired_keys
from shared.job_endings import announce_end
from shared.jobs import end_expired_lease, execute_update
from shared.models import Job, utcnow
from shared.retention import expire_jobs
from shared.settings import Settings, get_settings
from shared.status import JobStatus
from shared.storage import make_storage

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    """What one pass did."""

    resent: list[str] = field(default_factory=list)  # queued jobs whose message was sent again
    handed_back: list[str] = field(default_factory=list)  # expired leases, back to queued
    failed: list[str] = field(default_factory=list)  # expired leases past the attempts cap
    canceled: list[str] = field(default_factory=list)  # expired leases of jobs with a pending cancel
    purged_keys: int = 0  # expired Idempotency-Key records deleted


def reconcile_once(
    sessions: sessionmaker[Session], celery: Celery, settings: Settings, events: EventPublisher | None = None
) -> ReconcileReport:
    """One pass over jobs that the broker may have lost; `events` tells watchers of the jobs it ends."""
    events = events if events is not None else EventPublisher(None)
    report = ReconcileReport()
    now = utcnow()
    with sessions() as session:
        expired = (
            session.execute(select(Job.id).where(Job.status == JobStatus.RUNNING.value, Job.lease_expires_at < now))
            .scalars()
            .all()
        )
        for job_id in expired:
            # None: another reconciler, or a worker claiming the job, took it back first
            ended = end_expired_lease(session, job_id, settings.max_attempts)
            if ended is JobStatus.QUEUED:
                report.handed_back.append(job_id)
                events.publish(job_id, "status", {"status": ended.value, "reason": "worker_lost"})
            elif ended is not None:  # failed at the attempts cap, or canceled: nobody will run it again
                (report.failed if ended is JobStatus.FAILED else report.canceled).append(job_id)
                announce_end(settings, events, session.get_one(Job, job_id))
        cutoff = now - timedelta(seconds=settings.requeue_after_s)
        stale = session.execute(
            select(Job.id, Job.queue).where(
                Job.status == JobStatus.QUEUED.value,
                Job.cancel_requested.is_(False),
                or_(Job.enqueued_at.is_(None), Job.enqueued_at < cutoff),
                Job.created_at < now - timedelta(seconds=settings.enqueue_grace_s),
            )
        ).all()
        resend = []
        for job_id, queue in stale:
            won = execute_update(
                session,
                update(Job)
                .where(
                    Job.id == job_id,
                    Job.status == JobStatus.QUEUED.value,
                    or_(Job.enqueued_at.is_(None), and_(Job.enqueued_at < cutoff)),
                )
                .values(enqueued_at=now),
            )
            session.commit()
            if won:
                resend.append((job_id, queue))
        for job_id in report.handed_back:
            resend.append((job_id, session.get(Job, job_id).queue))  # type: ignore[union-attr]
    for job_id, queue in resend:
        if send_transfer(celery, job_id, queue) and job_id not in report.handed_back:
            report.resent.append(job_id)
    try:
        with sessions() as session:  # a lookup deletes the key it finds expired; these are the rest
            report.purged_keys = purge_expired_keys(session)
    except SQLAlchemyError as exc:  # housekeeping only: the jobs' work above is done, retention still runs
        log.warning("expired idempotency keys not purged: %s", exc)
    return report


@click.command()
@click.option("--interval", type=float, default=None, help="seconds between passes (default: setting)")
@click.option("--once", is_flag=True, help="run one pass and exit")
def reconcile(interval: float | None, once: bool) -> None:
    """Re-enqueue lost messages and expired leases, forever (or --once)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s reconcile: %(message)s")
    settings = get_settings()
    sessions = make_sessionmaker(make_engine(settings))
    celery = make_celery(settings)
    events = make_publisher(settings)
    storage = make_storage(settings.resolved_storage_url(), settings.s3_endpoint_url)
    while True:
        try:
            report = reconcile_once(sessions, celery, settings, events)
            if report.resent or report.handed_back or report.failed or report.canceled:
                log.info(
                    "resent %s, handed back %s, failed %s, canceled %s",
                    report.resent, report.handed_back, report.failed, report.canceled,
                )  # fmt: skip
            expire_jobs(sessions, storage, settings)  # images past retention (shared/retention.py)
        except Exception as exc:  # a database, broker or storage outage: try again next pass
            log.warning("pass failed: %s", exc)
        if once:
            return
        time.sleep(interval if interval is not None else settings.reconcile_interval_s)
