"""The Lease: kept alive past its length, lost when another owner takes the job, released at the end."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from sqlalchemy import update

from impasto.shared.jobs import as_utc, claim_job
from impasto.shared.models import Job, utcnow
from impasto.worker.context import WorkerContext
from impasto.worker.lease import Lease
from tests.worker.conftest import make_job

LEASE_S = 0.6  # renewed every 0.2 s


def expiry(ctx: WorkerContext, job_id: str) -> datetime:
    """When the job's lease runs out, as SQL has it."""
    with ctx.sessions() as session:
        moment = as_utc(session.get_one(Job, job_id).lease_expires_at)
    assert moment is not None
    return moment


def wait_until(condition, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    """Poll `condition` until true or `timeout` (seconds) has passed."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_kept_lease_outlives_its_length_and_a_released_one_runs_out(ctx: WorkerContext, samples: Path) -> None:
    """While kept, the expiry moves forward past the first lease's end; after release it stays put."""
    job_id = make_job(ctx, samples)
    with ctx.sessions() as session:
        assert claim_job(session, job_id, "w1/a", LEASE_S)
    first = expiry(ctx, job_id)
    with Lease(ctx.sessions, job_id, "w1/a", LEASE_S) as lease:
        assert wait_until(lambda: utcnow() > first), "the first lease's length passed"
        assert wait_until(lambda: expiry(ctx, job_id) > utcnow()), "the heartbeat renewed it"
    released = expiry(ctx, job_id)
    time.sleep(3 * LEASE_S)
    assert expiry(ctx, job_id) == released and not lease.lost.is_set()


def test_a_lease_taken_by_another_owner_is_lost(ctx: WorkerContext, samples: Path) -> None:
    """Another owner takes the job: the heartbeat notices and sets `lost`, and renew says no."""
    job_id = make_job(ctx, samples)
    with ctx.sessions() as session:
        assert claim_job(session, job_id, "w1/a", LEASE_S)
    with Lease(ctx.sessions, job_id, "w1/a", LEASE_S) as lease:
        assert lease.renew() and not lease.lost.is_set()
        with ctx.sessions() as session:
            session.execute(update(Job).where(Job.id == job_id).values(lease_owner="thief/x"))
            session.commit()
        assert wait_until(lease.lost.is_set), "the heartbeat saw the lease go"
        assert not lease.renew()
    with ctx.sessions() as session:
        assert session.get_one(Job, job_id).lease_owner == "thief/x", "the new owner's lease is left alone"
