"""The reconciler against real PostgreSQL and Redis: lost messages, expired leases, several copies."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import select, update

from impasto.api.idempotency import remember_key
from impasto.background.broker_loss import BrokerSentinel, broker_sentinel
from impasto.background.reconcile import reconcile_once
from impasto.shared.celery_app import make_celery
from impasto.shared.database import make_engine, make_sessionmaker, upgrade_database
from impasto.shared.enqueue import enqueue_job
from impasto.shared.events import make_publisher, stream_key
from impasto.shared.jobs import UNWATCHED, claim_job, create_job, hand_back
from impasto.shared.models import IdempotencyKey, Job, utcnow
from impasto.shared.settings import Settings, get_settings
from impasto.shared.task_names import TRANSFER_QUEUE, WEBHOOK_QUEUE
from tests.e2e.conftest import free_port


@pytest.fixture
def settings(tmp_path: Path, postgres_url: str, redis_url: str) -> Settings:
    """Settings on a fresh PostgreSQL database and a flushed Redis database."""
    s = get_settings(data_dir=tmp_path, database_url=postgres_url, broker_url=redis_url, enqueue_grace_s=0)
    upgrade_database(s)
    return s


@pytest.fixture
def sessions(settings: Settings) -> Iterator:  # type: ignore[type-arg]
    """A sessionmaker on the test database."""
    engine = make_engine(settings)
    yield make_sessionmaker(engine)
    engine.dispose()


def queued_messages(settings: Settings) -> list[str]:
    """Job ids of the transfer messages waiting in Redis."""
    client = redis.Redis.from_url(settings.resolved_broker_url())
    bodies = client.lrange(TRANSFER_QUEUE, 0, -1)
    client.close()
    return [json.loads(json.loads(b)["headers"]["argsrepr"].replace("'", '"'))[0] for b in bodies]


def stream_events(settings: Settings, job_id: str) -> list[tuple[str, dict]]:  # type: ignore[type-arg]
    """(event, data) of the job's event stream, oldest first."""
    client = redis.Redis.from_url(settings.resolved_broker_url())
    entries = client.xrange(stream_key(job_id))
    client.close()
    return [(fields[b"event"].decode(), json.loads(fields[b"data"])) for _, fields in entries]


def webhook_messages(settings: Settings) -> list[list]:  # type: ignore[type-arg]
    """The args ([job_id, event, iteration]) of the webhook deliveries waiting in Redis."""
    client = redis.Redis.from_url(settings.resolved_broker_url())
    bodies = client.lrange(WEBHOOK_QUEUE, 0, -1)
    client.close()
    return [json.loads(json.loads(b)["headers"]["argsrepr"].replace("'", '"')) for b in bodies]


def new_job(sessions, **values) -> str:  # type: ignore[no-untyped-def]
    """A queued job row (no images needed by the reconciler)."""
    with sessions() as session:
        job = create_job(session, params={"iterations": 10}, content_key="c", style_keys=["s"], queue=TRANSFER_QUEUE)
        session.commit()
        if values:
            session.execute(update(Job).where(Job.id == job.id).values(**values))
            session.commit()
        return job.id


def test_queued_job_without_a_message_is_sent(settings: Settings, sessions) -> None:  # type: ignore[no-untyped-def]
    """A queued job whose message never reached the broker is enqueued, once."""
    job_id = new_job(sessions)
    celery = make_celery(settings)
    assert reconcile_once(sessions, celery, settings).resent == [job_id]
    assert reconcile_once(sessions, celery, settings).resent == []
    assert queued_messages(settings) == [job_id]


def test_recently_enqueued_job_is_left_alone(settings: Settings, sessions) -> None:  # type: ignore[no-untyped-def]
    """A job whose message is younger than requeue_after_s is not sent again."""
    new_job(sessions, enqueued_at=utcnow())
    assert reconcile_once(sessions, make_celery(settings), settings).resent == []
    assert queued_messages(settings) == []


def test_expired_lease_goes_back_to_the_queue(settings: Settings, sessions) -> None:  # type: ignore[no-untyped-def]
    """A running job whose worker stopped renewing is queued again and re-sent."""
    job_id = new_job(sessions)
    with sessions() as session:
        assert claim_job(session, job_id, "dead/1", 30)
        session.execute(update(Job).where(Job.id == job_id).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()
    report = reconcile_once(sessions, make_celery(settings), settings, make_publisher(settings))
    assert report.handed_back == [job_id]
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job.status == "queued" and job.lease_owner is None
        assert [h.status for h in job.history] == ["queued", "running", "queued"]
    assert queued_messages(settings) == [job_id]
    # A watcher sees the job go back to the queue.
    assert stream_events(settings, job_id) == [("status", {"status": "queued", "reason": "worker_lost"})]


@pytest.mark.parametrize(
    ("lost_runs", "cancel_requested", "status", "code"),
    [(2, False, "failed", "worker_lost"), (0, True, "canceled", None)],
)
def test_expired_lease_ends_the_job_when_it_must(  # type: ignore[no-untyped-def]
    settings: Settings, sessions, lost_runs: int, cancel_requested: bool, status: str, code: str | None
) -> None:
    """The third run lost with its worker fails the job (worker_lost); a job being canceled ends canceled.

    Its watchers hear of it: a `status` event on its stream and its `completed` webhook.
    """
    job_id = new_job(
        sessions, status="running", attempts=5, lost_runs=lost_runs, lease_owner="dead/1",
        cancel_requested=cancel_requested, lease_expires_at=utcnow() - timedelta(seconds=1),
        webhook_url="https://hooks.example/impasto",
    )  # fmt: skip
    report = reconcile_once(sessions, make_celery(settings), settings, make_publisher(settings))
    assert (report.failed, report.canceled) == (([job_id], []) if status == "failed" else ([], [job_id]))
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job.status == status and job.error_code == code and job.finished_at is not None
        assert job.lost_runs == lost_runs + 1
        if code:
            assert job.error_message == "the job's worker was lost 3 times; giving up"
        error = {"code": code, "message": job.error_message} if code else None
    assert queued_messages(settings) == []
    assert stream_events(settings, job_id) == [("status", {"status": status, "error": error})]
    assert webhook_messages(settings) == [[job_id, "completed", -1 if status == "failed" else 0]]


def test_runs_handed_back_at_shutdown_do_not_count_toward_the_cap(  # type: ignore[no-untyped-def]
    settings: Settings, sessions
) -> None:
    """Two deploys (two graceful hand-backs) and one crash: the job goes back to the queue, not to failed."""
    job_id = new_job(sessions)
    with sessions() as session:
        for run in range(2):
            assert claim_job(session, job_id, f"deployed/{run}", 30)
            assert hand_back(session, job_id, f"deployed/{run}", UNWATCHED)
        assert claim_job(session, job_id, "crashed/1", 30)
        session.execute(update(Job).where(Job.id == job_id).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()
    assert reconcile_once(sessions, make_celery(settings), settings).handed_back == [job_id]
    with sessions() as session:
        job = session.get(Job, job_id)
        assert (job.status, job.attempts, job.lost_runs) == ("queued", 3, 1)


def test_several_reconcilers_at_once_send_each_job_once(settings: Settings, sessions) -> None:  # type: ignore[no-untyped-def]
    """Four copies racing over ten lost jobs send exactly ten messages."""
    job_ids = {new_job(sessions) for _ in range(10)}
    barrier = threading.Barrier(4)

    def one_copy() -> None:
        barrier.wait()
        reconcile_once(sessions, make_celery(settings), settings)

    threads = [threading.Thread(target=one_copy) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    messages = queued_messages(settings)
    assert sorted(messages) == sorted(job_ids)


def test_expired_idempotency_keys_are_purged(settings: Settings, sessions) -> None:  # type: ignore[no-untyped-def]
    """Keys past their time-to-live go; live ones stay (a lookup alone would leave unused ones forever)."""
    job_id = new_job(sessions, enqueued_at=utcnow())
    with sessions() as session:
        remember_key(session, "k:old", "h", job_id, ttl_seconds=-1)
        remember_key(session, "k:live", "h", job_id, ttl_seconds=3600)
        session.commit()
    assert reconcile_once(sessions, make_celery(settings), settings).purged_keys == 1
    with sessions() as session:
        assert session.scalars(select(IdempotencyKey.key)).all() == ["k:live"]


def enqueue_waiting_jobs(settings: Settings, sessions, count: int) -> list[str]:  # type: ignore[no-untyped-def]
    """`count` queued jobs whose messages were just sent, as the API leaves them; their ids."""
    celery = make_celery(settings)
    ids = []
    for _ in range(count):
        job_id = new_job(sessions)
        with sessions() as session:
            assert enqueue_job(celery, session, job_id, TRANSFER_QUEUE)
        ids.append(job_id)
    return ids


def test_a_flushed_broker_gets_every_queued_job_at_once(settings: Settings, sessions) -> None:  # type: ignore[no-untyped-def]
    """Waiting jobs are left alone pass after pass; after FLUSHDB the next pass re-sends each once, at once."""
    sentinel = broker_sentinel(settings)
    assert sentinel is not None
    celery = make_celery(settings)
    reconcile_once(sessions, celery, settings, sentinel=sentinel)  # plants the sentinel (a first look is a loss)
    job_ids = enqueue_waiting_jobs(settings, sessions, 3)
    for _ in range(3):
        report = reconcile_once(sessions, celery, settings, sentinel=sentinel)
        assert not report.broker_lost and report.resent == []
    assert sorted(queued_messages(settings)) == sorted(job_ids), "nothing lost: no duplicates added"

    redis.Redis.from_url(settings.resolved_broker_url()).flushdb()
    report = reconcile_once(sessions, celery, settings, sentinel=sentinel)
    assert report.broker_lost and sorted(report.resent) == sorted(job_ids)  # not after requeue_after_s (600)
    assert sorted(queued_messages(settings)) == sorted(job_ids)
    assert not reconcile_once(sessions, celery, settings, sentinel=sentinel).broker_lost
    assert sorted(queued_messages(settings)) == sorted(job_ids)


def test_several_reconcilers_see_one_flush_once(settings: Settings, sessions) -> None:  # type: ignore[no-untyped-def]
    """Four copies, each with its own sentinel connection, racing after a flush: each job is sent once."""
    job_ids = enqueue_waiting_jobs(settings, sessions, 5)
    celery = make_celery(settings)
    sentinels = [broker_sentinel(settings) for _ in range(4)]
    reconcile_once(sessions, celery, settings, sentinel=sentinels[0])
    redis.Redis.from_url(settings.resolved_broker_url()).flushdb()
    barrier = threading.Barrier(4)

    def one_copy(sentinel: BrokerSentinel | None) -> None:
        barrier.wait()
        reconcile_once(sessions, make_celery(settings), settings, sentinel=sentinel)

    threads = [threading.Thread(target=one_copy, args=(s,)) for s in sentinels]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(queued_messages(settings)) == sorted(job_ids)


def test_a_restarted_broker_without_persistence_gets_every_queued_job(
    tmp_path: Path,
    postgres_url: str,
) -> None:
    """A private redis-server restarted with no persistence: the next pass sees the new run_id and re-sends."""
    port = free_port()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    command += ["--dir", str(tmp_path)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    settings = get_settings(data_dir=tmp_path, database_url=postgres_url, broker_url=url, enqueue_grace_s=0)
    upgrade_database(settings)
    engine = make_engine(settings)
    sessions = make_sessionmaker(engine)
    try:
        wait_for_redis(url)
        sentinel = broker_sentinel(settings)
        assert sentinel is not None
        reconcile_once(sessions, make_celery(settings), settings, sentinel=sentinel)
        job_ids = enqueue_waiting_jobs(settings, sessions, 2)
        assert not reconcile_once(sessions, make_celery(settings), settings, sentinel=sentinel).broker_lost
        server.terminate()
        server.wait(10)
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        wait_for_redis(url)
        assert queued_messages(settings) == [], "the restart lost the messages"
        report = reconcile_once(sessions, make_celery(settings), settings, sentinel=sentinel)
        assert report.broker_lost and sorted(report.resent) == sorted(job_ids)
        assert sorted(queued_messages(settings)) == sorted(job_ids)
    finally:
        server.terminate()
        server.wait(10)
        engine.dispose()


def wait_for_redis(url: str) -> None:
    """Wait until the Redis at `url` answers PING."""
    client = redis.Redis.from_url(url)
    for _ in range(100):
        try:
            client.ping()
            client.close()
            return
        except redis.ConnectionError:
            time.sleep(0.05)
    raise TimeoutError(url)
