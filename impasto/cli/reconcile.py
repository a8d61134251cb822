"""`impasto reconcile`: the reconciler's loop (impasto/background/reconcile.py) as a process."""

from __future__ import annotations

import logging
import time

import click

from impasto.background.broker_loss import broker_sentinel
from impasto.background.reconcile import reconcile_once
from impasto.background.retention import expire_jobs
from impasto.shared.celery_app import make_celery
from impasto.shared.database import make_engine, make_sessionmaker
from impasto.shared.events import make_publisher
from impasto.shared.settings import get_settings
from impasto.shared.storage import make_storage

log = logging.getLogger("impasto.background.reconcile")


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
    sentinel = broker_sentinel(settings)
    storage = make_storage(settings.resolved_storage_url(), settings.s3_endpoint_url)
    while True:
        try:
            report = reconcile_once(sessions, celery, settings, events, sentinel)
            if report.broker_lost:
                log.warning("broker lost its messages: re-sent all %d queued jobs at once", len(report.resent))
            if report.resent or report.handed_back or report.failed or report.canceled:
                log.info(
                    "resent %s, handed back %s, failed %s, canceled %s",
                    report.resent, report.handed_back, report.failed, report.canceled,
                )  # fmt: skip
            expire_jobs(sessions, storage, settings)  # images past retention (impasto/background/retention.py)
        except Exception as exc:  # a database, broker or storage outage: try again next pass
            log.warning("pass failed: %s", exc)
        if once:
            return
        time.sleep(interval if interval is not None else settings.reconcile_interval_s)
