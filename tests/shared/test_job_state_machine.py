"""The job state machine (shared/jobs.py), every transition and every guard, on SQLite and PostgreSQL.

Each case starts a job in a state reached through the state machine itself, applies one call, and
checks what the call returned, where the row stands, which history rows it added, and whether the
job's watchers were told of an end (exactly once for each end, never otherwise).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from impasto.shared.database import make_engine, make_sessionmaker, upgrade_database
from impasto.shared.job_records import record_progress
from impasto.shared.jobs import (
    add_snapshot,
    claim_job,
    create_job,
    delete_job,
    end_expired_lease,
    finish_job,
    hand_back,
    renew_lease,
    request_cancel,
)
from impasto.shared.models import ApiKey, Job, JobSnapshot, JobStatusChange
from impasto.shared.settings import get_settings
from impasto.shared.status import JobStatus

OWNER, OTHER = "w1/a", "w2/b"
EXPIRED = -1.0  # a lease length that is over at once: a worker that died just after its claim


class Told:
    """An EndWatcher that keeps what it was told: the status of each ended job, as committed."""

    def __init__(self) -> None:
        self.ends: list[tuple[str, str]] = []

    def job_ended(self, job: Job) -> None:
        """Keep the job's id and committed status."""
        self.ends.append((job.id, job.status))


@pytest.fixture
def sessions(empty_database: str, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """Sessions on a migrated database of each kind."""
    settings = get_settings(data_dir=tmp_path, database_url=empty_database)
    upgrade_database(settings)
    engine = make_engine(settings)
    yield make_sessionmaker(engine)
    engine.dispose()


def new_job(session: Session) -> str:
    """A queued job."""
    job = create_job(session, params={"iterations": 10}, content_key="c", style_keys=["s"], queue="transfer")
    session.commit()
    return job.id


# Where a case starts, each reached by calls of the state machine (and its history up to there).
SETUPS: dict[str, Callable[[Session, str], object]] = {
    "queued": lambda s, j: None,
    "running": lambda s, j: claim_job(s, j, OWNER, 60),
    "running, lease expired": lambda s, j: claim_job(s, j, OWNER, EXPIRED),
    "running, cancel pending": lambda s, j: (claim_job(s, j, OWNER, 60), cancel(s, j)),
    "running, cancel pending, lease expired": lambda s, j: (claim_job(s, j, OWNER, EXPIRED), cancel(s, j)),
    "succeeded": lambda s, j: (claim_job(s, j, OWNER, 60), finish_job(s, j, OWNER, JobStatus.SUCCEEDED, Told())),
    "failed": lambda s, j: (claim_job(s, j, OWNER, 60), finish_job(s, j, OWNER, JobStatus.FAILED, Told())),
    "canceled": lambda s, j: cancel(s, j),
}


def cancel(session: Session, job_id: str, told: Told | None = None) -> bool:
    """POST /cancel's write: True if this call ended the job."""
    return request_cancel(session, session.get_one(Job, job_id), told or Told())[1]


Action = Callable[[Session, str, Told], Any]
ACTIONS: dict[str, Action] = {
    "claim by another": lambda s, j, t: claim_job(s, j, OTHER, 60),
    "claim again by its owner": lambda s, j, t: claim_job(s, j, OWNER, 60),
    "renew by its owner": lambda s, j, t: renew_lease(s, j, OWNER, 60),
    "renew by another": lambda s, j, t: renew_lease(s, j, OTHER, 60),
    "progress by its owner": lambda s, j, t: record_progress(s, j, OWNER, 3, {"total": 1.0}, 2.0),
    "progress by another": lambda s, j, t: record_progress(s, j, OTHER, 3, {"total": 1.0}, 2.0),
    "succeed": lambda s, j, t: finish_job(s, j, OWNER, JobStatus.SUCCEEDED, t, output_key="o.png"),
    "fail": lambda s, j, t: finish_job(s, j, OWNER, JobStatus.FAILED, t, error_code="e", error_message="m"),
    "end canceled": lambda s, j, t: finish_job(s, j, OWNER, JobStatus.CANCELED, t),
    "succeed by another": lambda s, j, t: finish_job(s, j, OTHER, JobStatus.SUCCEEDED, t),
    "hand back": lambda s, j, t: hand_back(s, j, OWNER, t),
    "hand back by another": lambda s, j, t: hand_back(s, j, OTHER, t),
    "take back expired lease": lambda s, j, t: end_expired_lease(s, j, 3, t),
    "take back expired lease at the cap": lambda s, j, t: end_expired_lease(s, j, 1, t),
    "cancel": lambda s, j, t: cancel(s, j, t),
    "delete": lambda s, j, t: delete_job(s, j),
}


@dataclass(frozen=True)
class Case:
    """One call on a job in one state, and what must follow."""

    start: str
    action: str
    returns: Any
    status: str | None  # None: the row is gone
    added: tuple[str, ...] = ()  # history rows the call appended
    told: bool = False  # whether the watchers heard of an end


Q, R, S, F, C = "queued", "running", "succeeded", "failed", "canceled"
CASES = [
    # queued -> running: a claim with a lease; a duplicate delivery or a live lease refuses it
    Case(Q, "claim by another", True, R, (R,)),
    Case(R, "claim by another", False, R),
    Case(R, "claim again by its owner", False, R),
    Case("running, lease expired", "claim by another", False, R),  # taken back first (its run gets its end row)
    *(Case(end, "claim by another", False, end) for end in (S, F, C)),
    # the lease: renewed, and progress written, only by its owner while the job runs
    Case(R, "renew by its owner", True, R),
    Case(R, "renew by another", False, R),
    Case(Q, "renew by its owner", False, Q),
    Case(S, "renew by its owner", False, S),
    Case(R, "progress by its owner", True, R),
    Case(R, "progress by another", False, R),
    Case(C, "progress by its owner", False, C),
    # running -> succeeded | failed | canceled, by the lease's owner only; an end is final
    Case(R, "succeed", True, S, (S,), told=True),
    Case(R, "fail", True, F, (F,), told=True),
    Case(R, "end canceled", True, C, (C,), told=True),
    Case("running, cancel pending", "end canceled", True, C, (C,), told=True),
    Case("running, lease expired", "succeed", True, S, (S,), told=True),  # nobody took it back yet
    Case(R, "succeed by another", False, R),
    Case(Q, "succeed", False, Q),
    *(Case(end, "fail", False, end) for end in (S, F, C)),
    Case(S, "end canceled", False, S),
    # running -> queued at a shutdown; with a cancel pending it ends canceled instead
    Case(R, "hand back", JobStatus.QUEUED, Q, (Q,)),
    Case("running, cancel pending", "hand back", JobStatus.CANCELED, C, (C,), told=True),
    Case(R, "hand back by another", None, R),
    Case(Q, "hand back", None, Q),
    Case(S, "hand back", None, S),
    # running -> queued when the lease expired; at the cap -> failed; with a cancel pending -> canceled
    Case("running, lease expired", "take back expired lease", JobStatus.QUEUED, Q, (Q,)),
    Case("running, lease expired", "take back expired lease at the cap", JobStatus.FAILED, F, (F,), told=True),
    Case("running, cancel pending, lease expired", "take back expired lease", JobStatus.CANCELED, C, (C,), told=True),
    Case(R, "take back expired lease", None, R),  # the lease is live
    Case(Q, "take back expired lease", None, Q),
    Case(F, "take back expired lease at the cap", None, F),
    # queued -> canceled at once; a running job is flagged; a cancel is idempotent
    Case(Q, "cancel", True, C, (C,), told=True),
    Case(R, "cancel", False, R),
    Case("running, cancel pending", "cancel", False, R),
    *(Case(end, "cancel", False, end) for end in (S, F, C)),
    # delete only a finished job
    *(Case(end, "delete", True, None) for end in (S, F, C)),
    *(Case(state, "delete", False, state) for state in (Q, R)),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c.start}: {c.action}" for c in CASES])
def test_transition(sessions: sessionmaker[Session], case: Case) -> None:
    """One call from one state: its result, the row, the history it added, and who was told."""
    with sessions() as session:
        job_id = new_job(session)
        SETUPS[case.start](session, job_id)
    with sessions() as session:
        before = history(session, job_id)
    told = Told()
    with sessions() as session:
        assert ACTIONS[case.action](session, job_id, told) == case.returns
    with sessions() as session:
        job = session.get(Job, job_id)
        if case.status is None:
            assert job is None and history(session, job_id) == [], "the row and its history are gone"
            return
        assert job is not None and job.status == case.status
        assert history(session, job_id) == before + list(case.added)
        assert told.ends == ([(job_id, case.status)] if case.told else [])
        if JobStatus(job.status).finished or job.status == Q:
            assert job.lease_owner is None and job.lease_expires_at is None, "only a running job has a lease"
        assert (job.finished_at is not None) == JobStatus(job.status).finished


def history(session: Session, job_id: str) -> list[str]:
    """The job's status history, oldest first."""
    rows = select(JobStatusChange.status).where(JobStatusChange.job_id == job_id).order_by(JobStatusChange.id)
    return list(session.scalars(rows))


def test_attempts_count_claims_and_the_cap_counts_only_lost_runs(sessions: sessionmaker[Session]) -> None:
    """Two hand-backs and two lost runs leave the job queued under a cap of 3; the third lost run fails it."""
    with sessions() as session:
        job_id = new_job(session)
        for _ in range(2):  # deploys: graceful hand-backs, which the cap does not count
            assert claim_job(session, job_id, OWNER, 60)
            assert hand_back(session, job_id, OWNER, Told()) is JobStatus.QUEUED
        for lost in (1, 2):
            assert claim_job(session, job_id, f"dead/{lost}", EXPIRED)
            assert end_expired_lease(session, job_id, 3, Told()) is JobStatus.QUEUED
            job = session.get_one(Job, job_id, populate_existing=True)
            assert (job.lost_runs, job.attempts, job.enqueued_at is not None) == (lost, 2 + lost, True)
        assert claim_job(session, job_id, "dead/3", EXPIRED)
        told = Told()
        assert end_expired_lease(session, job_id, 3, told) is JobStatus.FAILED
        job = session.get_one(Job, job_id, populate_existing=True)
    assert (job.status, job.attempts, job.lost_runs, job.error_code) == (F, 5, 3, "worker_lost")
    assert job.error_message == "the job's worker was lost 3 times; giving up"
    assert told.ends == [(job_id, F)]


def test_a_cancel_flags_a_running_job_and_its_worker_ends_it(sessions: sessionmaker[Session]) -> None:
    """A running job is only flagged (its worker polls the flag); the worker's canceled end is told once."""
    with sessions() as session:
        job_id = new_job(session)
        assert claim_job(session, job_id, OWNER, 60)
        assert not cancel(session, job_id) and not cancel(session, job_id)
        assert session.get_one(Job, job_id, populate_existing=True).cancel_requested
        told = Told()
        assert finish_job(session, job_id, OWNER, JobStatus.CANCELED, told, iteration=4)
        assert not cancel(session, job_id)
        job = session.get_one(Job, job_id, populate_existing=True)
    assert (job.status, job.iteration) == (C, 4) and told.ends == [(job_id, C)]


def test_of_concurrent_claims_exactly_one_wins(sessions: sessionmaker[Session]) -> None:
    """Eight workers take the same message at once (a redelivery storm): one claim wins, one history row."""
    with sessions() as session:
        job_id = new_job(session)
    start = threading.Barrier(8)
    won: list[bool] = []

    def take(owner: str) -> None:
        with sessions() as session:
            start.wait()
            won.append(claim_job(session, job_id, owner, 60))

    threads = [threading.Thread(target=take, args=(f"w{n}/x",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(won) == [False] * 7 + [True]
    with sessions() as session:
        assert history(session, job_id) == [Q, R]
        assert session.get_one(Job, job_id).attempts == 1


def test_delete_takes_the_history_and_snapshots_with_the_row(sessions: sessionmaker[Session]) -> None:
    """A finished job's delete removes its history and snapshot rows too (ON DELETE CASCADE)."""
    with sessions() as session:
        job_id = new_job(session)
        assert claim_job(session, job_id, OWNER, 60)
        add_snapshot(session, job_id, 5, "jobs/x/5.png")
        assert not delete_job(session, job_id), "a running job is not deleted"
        assert finish_job(session, job_id, OWNER, JobStatus.SUCCEEDED, Told())
        assert delete_job(session, job_id)
        assert not delete_job(session, job_id), "a second delete finds nothing"
        counts = [session.scalar(select(func.count()).select_from(t)) for t in (Job, JobStatusChange, JobSnapshot)]
    assert counts == [0, 0, 0]


def test_a_job_is_owned_and_has_its_webhook_from_its_insert(sessions: sessionmaker[Session]) -> None:
    """create_job writes the owner and the webhook in the INSERT itself."""
    with sessions() as session:
        session.add(ApiKey(id="k1", name="alice", secret_hash="0" * 64))  # what impasto.shared.api_keys.create_key adds
        job = create_job(
            session, params={"iterations": 10}, content_key="c", style_keys=["s"], queue="transfer",
            owner_key_id="k1", webhook_url="https://hooks.example/h", webhook_events=["completed"],
        )  # fmt: skip
        session.commit()
        job_id = job.id
    with sessions() as session:
        job = session.get_one(Job, job_id)
        assert (job.owner_key_id, job.webhook_url) == ("k1", "https://hooks.example/h")
        assert job.webhook_events == ["completed"]
        assert (job.status, history(session, job_id)) == (Q, [Q])
