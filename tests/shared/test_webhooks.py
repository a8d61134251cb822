"""Webhooks: URL checks, signatures, and delivery by a real Celery worker over Redis (db 11)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery.contrib.testing.worker import start_worker

from shared import webhooks
from shared.celery_app import make_celery
from shared.database import make_engine, make_sessionmaker, upgrade_database
from shared.jobs import create_job
from shared.settings import Settings
from shared.task_names import WEBHOOK_QUEUE
from shared.webhook_delivery import backoff_s, delivery_context
from shared.webhooks import WebhookRefused, WebhookTarget, check_webhook_url, notify, sign, verify
from tests.conftest import REDIS_BASE
from tests.shared.webhook_receiver import Receiver

REDIS_URL = f"{REDIS_BASE}/11"  # this file's own Redis database, flushed around each test
SECRET = "test-webhook-secret"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://localhost:8080/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
        "ftp://93.184.215.14/hook",
        "not a url",
        "http://93.184.215.14:99999/hook",
    ],
)
def test_refused_urls(url: str) -> None:
    """Non-public addresses, other schemes and broken URLs are refused."""
    with pytest.raises(WebhookRefused):
        check_webhook_url(url, allow_private=False)


def test_public_address_and_allowed_loopback() -> None:
    """A public literal address passes; loopback passes when the setting allows it."""
    check_webhook_url("https://93.184.215.14/hook", allow_private=False)
    check_webhook_url("http://127.0.0.1:8080/hook", allow_private=True)


def test_sign_and_verify() -> None:
    """The Standard Webhooks signature verifies, and a changed body or secret does not."""
    headers = {"webhook-id": "j:start:0", "webhook-timestamp": "1700000000"}
    headers["webhook-signature"] = sign(SECRET, headers["webhook-id"], 1700000000, '{"a":1}')
    assert headers["webhook-signature"].startswith("v1,")
    assert verify(SECRET, headers, '{"a":1}')
    assert not verify(SECRET, headers, '{"a":2}')
    assert not verify("other", headers, '{"a":1}')


def test_backoff_doubles_to_a_cap() -> None:
    """Exponential backoff, capped."""
    settings = Settings(webhook_backoff_s=2.0, webhook_backoff_max_s=10.0)
    assert [backoff_s(n, settings) for n in range(5)] == [2.0, 4.0, 8.0, 10.0, 10.0]


@pytest.fixture
def delivery_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A migrated SQLite database and the environment a webhook worker reads; cleaned up after."""
    database_url = f"sqlite:///{tmp_path / 'impasto.sqlite3'}"
    env = {
        "IMPASTO_DATA_DIR": str(tmp_path),
        "IMPASTO_DATABASE_URL": database_url,
        "IMPASTO_BROKER_URL": REDIS_URL,
        "IMPASTO_WEBHOOK_SECRET": SECRET,
        "IMPASTO_WEBHOOK_ALLOW_PRIVATE": "true",
        "IMPASTO_WEBHOOK_BACKOFF_S": "0.2",
        "IMPASTO_WEBHOOK_TIMEOUT_S": "5",
        "IMPASTO_URL": "http://api.test",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    upgrade_database(settings)
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    delivery_context.cache_clear()
    webhooks._sender.cache_clear()
    yield settings
    if delivery_context.cache_info().currsize:
        delivery_context().sessions.kw["bind"].dispose()
    delivery_context.cache_clear()
    for app in [webhooks._sender(REDIS_URL)] if webhooks._sender.cache_info().currsize else []:
        app.close()
    webhooks._sender.cache_clear()
    client.flushdb()
    client.close()


def make_job(settings: Settings, webhook_url: str, events: list[str]) -> str:
    """A queued job row with a webhook."""
    engine = make_engine(settings)
    try:
        with make_sessionmaker(engine)() as session:
            job = create_job(session, params={"iterations": 10}, content_key="c", style_keys=["s"], queue="transfer")
            job.webhook_url, job.webhook_events = webhook_url, events
            session.commit()
            return job.id
    finally:
        engine.dispose()


def test_delivery_signed_filtered_and_retried(delivery_env: Settings) -> None:
    """A real worker on the webhooks queue POSTs signed events; a 500 is retried with the same id."""
    app = make_celery(delivery_env)
    import shared.webhook_delivery  # noqa: F401  (registers the task with the app)

    with Receiver(fail_first=1) as receiver:
        job_id = make_job(delivery_env, receiver.url, ["completed", "start"])
        target = WebhookTarget(receiver.url, frozenset({"start", "completed"}))
        with start_worker(
            app, pool="threads", concurrency=2, queues=[WEBHOOK_QUEUE], perform_ping_check=False, shutdown_timeout=30
        ):
            notify(delivery_env, target, job_id, "start")
            first, retry = receiver.wait_for(2)
            notify(delivery_env, target, job_id, "snapshot", 5)  # filtered out: never enqueued
            notify(delivery_env, target, job_id, "completed", 10)
            completed = receiver.wait_for(3)[2]
    app.close()
    assert first.headers["webhook-id"] == retry.headers["webhook-id"] == f"{job_id}:start:0"
    assert first.body == retry.body
    for request in (retry, completed):
        assert verify(SECRET, request.headers, request.body)
    start_body = json.loads(retry.body)
    assert start_body["type"] == "start"
    assert start_body["job"]["id"] == job_id
    assert start_body["job"]["urls"]["self"] == f"http://api.test/v1/jobs/{job_id}"
    assert json.loads(completed.body)["type"] == "completed"
    assert completed.headers["webhook-id"] == f"{job_id}:completed:10"
    assert len(receiver.requests) == 3
