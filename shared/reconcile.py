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
from sqlalchemy.orm import Session, sessionmaker

from shared.celery_app import make_celery
from shared.database import make_engine, make_sessionmaker
from shared.enqueue import send_transfer
from shared.jobs import execute_update, record_transition
from shared.models import Job, utcnow
from shared.settings import Settings, get_settings
from shared.status import JobStatus

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    """What one pass did."""

    resent: list[str] = field(default_factory=list)  # queued jobs whose message was sent again
    handed_back: list[str] = field(default_factory=list)  # expired leases, back to queued
    failed: list[str] = field(default_factory=list)  # expired leases past the attempts cap


def reconcile_once(sessions: sessionmaker[Session], celery: Celery, settings: Settings) -> ReconcileReport:
    """One pass over jobs that the broker may have lost."""
    report = ReconcileReport()
    now = utcnow()
    with sessions() as session:
        expired = session.execute(
            select(Job.id, Job.attempts, Job.cancel_requested).where(
                Job.status == JobStatus.RUNNING.value, Job.lease_expires_at < now
            )
        ).all()
        for job_id, attempts, cancel_requested in expired:
            won = execute_update(
                session,
                update(Job)
                .where(Job.id == job_id, Job.status == JobStatus.RUNNING.value, Job.lease_expires_at < now)
                .values(
                    lease_owner=None, lease_expires_at=None, **_after_expiry(attempts, cancel_requested, settings, now)
                ),
            )
            if not won:
                continue  # another reconciler or a claiming worker got there first
            if cancel_requested:
                record_transition(session, job_id, JobStatus.CANCELED, None, attempts)
            elif attempts >= settings.max_attempts:
                record_transition(session, job_id, JobStatus.FAILED, None, attempts)
                report.failed.append(job_id)
            else:
                record_transition(session, job_id, JobStatus.QUEUED, None, attempts)
                report.handed_back.append(job_id)
            session.commit()
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
    return report


def _after_expiry(attempts: int, cancel_requested: bool, settings: Settings, now: object) -> dict[str, object]:
    if cancel_requested:  # its worker died while stopping: nobody will run it again
        return {"status": JobStatus.CANCELED.value, "finished_at": now}
    if attempts >= settings.max_attempts:
        return {
            "status": JobStatus.FAILED.value,
            "finished_at": now,
            "error_code": "worker_lost",
            "error_message": f"the job's worker was lost {attempts} times; giving up",
        }
    return {"status": JobStatus.QUEUED.value, "enqueued_at": now}


@click.command()
@click.option("--interval", type=float, default=None, help="seconds between passes (default: setting)")
@click.option("--once", is_flag=True, help="run one pass and exit")
def reconcile(interval: float | None, once: bool) -> None:
    """Re-enqueue lost messages and expired leases, forever (or --once)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s reconcile: %(message)s")
    settings = get_settings()
    sessions = make_sessionmaker(make_engine(settings))
    celery = make_celery(settings)
    while True:
        try:
            report = reconcile_once(sessions, celery, settings)
            if report.resent or report.handed_back or report.failed:
                log.info("resent %s, handed back %s, failed %s", report.resent, report.handed_back, report.failed)
        except Exception as exc:  # a database or broker outage: try again next pass
            log.warning("pass failed: %s", exc)
        if once:
            return
        time.sleep(interval if interval is not None else settings.reconcile_interval_s)
