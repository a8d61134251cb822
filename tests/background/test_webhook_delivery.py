"""Webhook delivery by a real Celery worker over Redis (db 11) to real local receivers: signatures
checked with the reference library, retries, sequence numbers, the SSRF bypass and DNS rebinding
refused at delivery, a total deadline against dripping receivers, and https with SNI."""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery.contrib.testing.worker import start_worker

from impasto.background import webhook_http
from impasto.background.webhook_delivery import backoff_s, deliver_webhook, delivery_context
from impasto.shared import webhooks
from impasto.shared.celery_app import make_celery
from impasto.shared.database import make_engine, make_sessionmaker, upgrade_database
from impasto.shared.enqueue import send_webhook
from impasto.shared.jobs import create_job
from impasto.shared.settings import Settings
from impasto.shared.task_names import WEBHOOK_QUEUE
from impasto.shared.webhooks import WebhookTarget
from tests.conftest import REDIS_BASE
from tests.shared.webhook_receiver import DrippingReceiver, Receiver, self_signed_certificate, server_tls

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = f"{REDIS_BASE}/11"  # this file's own Redis database, flushed around each test
SECRET = "whsec_z8/O6llm3VmEZmc5wcXDE+BhqdASHgdXwj/600ntpqM="  # made by `impasto webhook-secret`
PUBLIC = "192.88.99.1"  # a global address (never a receiver here): what a rebinding name answers first


def test_backoff_doubles_to_a_cap() -> None:
    """Exponential backoff, capped."""
    settings = Settings(webhook_backoff_s=2.0, webhook_backoff_max_s=10.0)
    assert [backoff_s(n, settings) for n in range(5)] == [2.0, 4.0, 8.0, 10.0, 10.0]


@pytest.fixture
def delivery_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """A migrated SQLite database and the environment a webhook worker reads; yields the monkeypatch
    so that a test can change a setting (IMPASTO_*) before the first delivery."""
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
    upgrade_database(Settings())
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    delivery_context.cache_clear()
    yield monkeypatch
    if delivery_context.cache_info().currsize:
        delivery_context().sessions.kw["bind"].dispose()
    delivery_context.cache_clear()
    client.flushdb()
    client.close()


def make_job(webhook_url: str, events: list[str] | None = None, iterations: int = 10) -> str:
    """A queued job row with a webhook, written straight to SQL (no API check in the way)."""
    engine = make_engine(Settings())
    try:
        with make_sessionmaker(engine)() as session:
            params = {"iterations": iterations}
            job = create_job(
                session, params=params, content_key="c", style_keys=["s"], queue="transfer",
                webhook_url=webhook_url, webhook_events=events or list(webhooks.WEBHOOK_EVENTS),
            )  # fmt: skip
            session.commit()
            return job.id
    finally:
        engine.dispose()


def deliver_now(job_id: str, event: str = "start", iteration: int = 0) -> Any:
    """Run one delivery attempt in this process, as the webhook worker runs it; its outcome."""
    return deliver_webhook.apply(args=[job_id, event, iteration]).get(propagate=False)


def resolve_as(monkeypatch: pytest.MonkeyPatch, name: str, *answers: str) -> list[str]:
    """Make `name` resolve to answers[0], then answers[1] on the next lookup, ... (the last one stays);
    returns the list of answers given. Other names resolve as usual. No DNS server is needed."""
    real = socket.getaddrinfo
    given: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != name:
            return real(host, port, *args, **kwargs)
        given.append(answers[min(len(given), len(answers) - 1)])
        return real(given[-1], port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return given


def test_delivery_verifies_with_the_reference_library_and_is_retried(delivery_env: pytest.MonkeyPatch) -> None:
    """A real worker on the webhooks queue POSTs events that standardwebhooks verifies; a 500 is retried
    with the same id, body and sequence number; events carry their place in the job's order."""
    settings = Settings()
    app = make_celery(settings)
    with Receiver(fail_first=1, secret=SECRET) as receiver:
        job_id = make_job(receiver.url, ["completed", "start"])
        target = WebhookTarget(receiver.url, frozenset({"start", "completed"}))
        with start_worker(
            app, pool="threads", concurrency=2, queues=[WEBHOOK_QUEUE], perform_ping_check=False, shutdown_timeout=30
        ):
            send_webhook(app, target, job_id, "start")
            first, retry = receiver.wait_for(2)
            send_webhook(app, target, job_id, "snapshot", 5)  # filtered out: never enqueued
            send_webhook(app, target, job_id, "completed", 10)
            completed = receiver.wait_for(3)[2]
    app.close()
    assert first.headers["webhook-id"] == retry.headers["webhook-id"] == f"{job_id}:start:0"
    assert first.body == retry.body
    assert [r.verified for r in receiver.requests] == [True, True, True]
    start_body = retry.json()
    assert start_body["type"] == "start" and start_body["sequence"] == 0
    assert start_body["job"]["id"] == job_id
    assert start_body["job"]["urls"]["self"] == f"http://api.test/v1/jobs/{job_id}"
    assert completed.json()["type"] == "completed" and completed.json()["sequence"] == 11
    assert completed.headers["webhook-id"] == f"{job_id}:completed:10"
    assert len(receiver.requests) == 3


@pytest.mark.parametrize(
    ("event", "iteration", "sequence"),
    [("start", 0, 0), ("snapshot", 5, 5), ("snapshot", 10, 10), ("completed", 10, 11), ("completed", -1, 11)],
)
def test_sequence_orders_a_jobs_events(
    delivery_env: pytest.MonkeyPatch, event: str, iteration: int, sequence: int
) -> None:
    """start < snapshots by iteration < completed (also a failure's, sent with iteration -1)."""
    with Receiver(secret=SECRET) as receiver:
        assert deliver_now(make_job(receiver.url), event, iteration) == "delivered"
    assert receiver.requests[0].json()["sequence"] == sequence
    assert receiver.requests[0].verified


@pytest.mark.parametrize(
    "form", ["http://127.0.0.1:{port}\\@8.8.8.8/hook", "http://127.0.0.1:{port}\\@8.8.8.8:{port}/"]
)
def test_parser_bypass_is_refused_at_delivery(delivery_env: pytest.MonkeyPatch, form: str) -> None:
    """A stored URL that one parser reads as 8.8.8.8 and the HTTP client as loopback is refused; the
    loopback receiver it would reach gets nothing."""
    delivery_env.setenv("IMPASTO_WEBHOOK_ALLOW_PRIVATE", "false")
    with Receiver() as receiver:
        port = receiver.server.server_address[1]
        outcome = deliver_now(make_job(form.format(port=port)))
        time.sleep(0.5)
    assert outcome == "refused"
    assert receiver.requests == []


def test_delivery_connects_to_the_address_it_checked(delivery_env: pytest.MonkeyPatch) -> None:
    """DNS rebinding: a name that answers a public address to the check and loopback afterwards. The
    delivery asks the resolver once and connects to the checked (public) address: the loopback
    receiver that a second lookup would reach gets nothing."""
    delivery_env.setenv("IMPASTO_WEBHOOK_ALLOW_PRIVATE", "false")
    delivery_env.setenv("IMPASTO_WEBHOOK_TIMEOUT_S", "1")
    delivery_env.setenv("IMPASTO_WEBHOOK_MAX_RETRIES", "0")
    dialled: list[str] = []

    def connect_offline(addresses: Any, deadline: float) -> Any:
        # Tests never send traffic off this machine: record where the delivery dials, and let a
        # public address fail as an unreachable host would.
        dialled.extend(str(address.sockaddr[0]) for address in addresses)
        local = [address for address in addresses if ipaddress.ip_address(address.sockaddr[0]).is_loopback]
        if not local:
            raise webhook_http.WebhookPostFailed("could not connect: unreachable (test)")
        return real_connect(local, deadline)

    real_connect = webhook_http._connect
    delivery_env.setattr(webhook_http, "_connect", connect_offline)
    with Receiver() as receiver:
        port = receiver.server.server_address[1]
        given = resolve_as(delivery_env, "rebind.test", PUBLIC, "127.0.0.1")
        deliver_now(make_job(f"http://rebind.test:{port}/hook"))
        time.sleep(0.5)
    assert given == [PUBLIC]
    assert dialled == [PUBLIC]
    assert receiver.requests == []


def test_delivery_sends_the_hosts_name_to_the_address_resolved(delivery_env: pytest.MonkeyPatch) -> None:
    """Connected by address, the request still names the URL's host (Host header) and its path."""
    with Receiver(url_host="hooks.test") as receiver:
        given = resolve_as(delivery_env, "hooks.test", "127.0.0.1")
        assert deliver_now(make_job(receiver.url + "?tenant=a")) == "delivered"
    port = receiver.server.server_address[1]
    assert given == ["127.0.0.1"]
    assert receiver.requests[0].headers["host"] == f"hooks.test:{port}"


def test_https_delivery_checks_the_certificate_against_the_host_name(
    delivery_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """https: connected to the resolved address, TLS sends the URL's host name (SNI) and checks the
    certificate against it; a certificate for another name is refused, nothing delivered."""
    cert, key = self_signed_certificate(tmp_path, "hooks.test")
    other_cert, other_key = self_signed_certificate(tmp_path, "other.test")
    delivery_env.setenv("IMPASTO_WEBHOOK_CA_FILE", str(cert))
    delivery_env.setenv("IMPASTO_WEBHOOK_MAX_RETRIES", "0")
    resolve_as(delivery_env, "hooks.test", "127.0.0.1")
    seen: list[str | None] = []
    with Receiver(secret=SECRET, tls=server_tls(cert, key, seen), url_host="hooks.test") as receiver:
        assert deliver_now(make_job(receiver.url)) == "delivered"
    assert seen == ["hooks.test"] and receiver.requests[0].verified
    with Receiver(tls=server_tls(other_cert, other_key, []), url_host="hooks.test") as impostor:
        assert deliver_now(make_job(impostor.url)) == "dropped"
    assert impostor.requests == []


def test_dripping_receivers_are_cut_at_the_deadline(delivery_env: pytest.MonkeyPatch) -> None:
    """Two receivers that drip a header line every 0.5 s (under the old per-read timeout, forever) take
    both delivery threads; each is cut at the delivery deadline, and another tenant's webhook,
    queued behind them, arrives soon after, not when the drips end."""
    deadline_s = 2.0
    delivery_env.setenv("IMPASTO_WEBHOOK_TIMEOUT_S", str(deadline_s))
    delivery_env.setenv("IMPASTO_WEBHOOK_MAX_RETRIES", "0")
    settings = Settings()
    app = make_celery(settings)
    with DrippingReceiver(drip_s=0.5, max_s=90) as slow, Receiver(secret=SECRET) as other:
        slow_jobs = [make_job(slow.url) for _ in range(2)]
        other_job = make_job(other.url)
        with start_worker(
            app, pool="threads", concurrency=2, queues=[WEBHOOK_QUEUE], perform_ping_check=False, shutdown_timeout=30
        ):
            for job_id in slow_jobs:
                send_webhook(app, WebhookTarget(slow.url, frozenset({"start"})), job_id, "start")
            while len(slow.held) < 2:  # both threads are held before the other tenant's event is sent
                time.sleep(0.05)
            sent = time.monotonic()
            send_webhook(app, WebhookTarget(other.url, frozenset({"start"})), other_job, "start")
            other.wait_for(1, timeout=30)  # the drips go on for 90 s (50 s until http.client's 100-header limit)
            waited = time.monotonic() - sent
            while any(held.closed is None for held in slow.held) and time.monotonic() - sent < 30:
                time.sleep(0.05)
    app.close()
    held_s = [held.closed - held.opened for held in slow.held if held.closed is not None]
    assert len(held_s) == 2 and all(held < deadline_s + 8 for held in held_s), held_s  # generous: a loaded machine
    assert waited < deadline_s + 15, waited
    assert other.requests[0].verified


def readme_receiver() -> str:
    """The receiver the README's Webhooks section shows, exactly as written there."""
    readme = (ROOT / "README.md").read_text()
    return readme.split("```python\n# receiver.py\n", 1)[1].split("```", 1)[0]


def test_the_readme_receiver_works_as_written(delivery_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The README's receiver, run with `flask --app receiver run` and the server's whsec_ secret, accepts
    real deliveries, and by their sequence ignores an older event that arrives after a newer one."""
    (tmp_path / "receiver.py").write_text(readme_receiver())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "receiver", "run", "--port", str(port)],
        cwd=tmp_path,
        env={**os.environ, "IMPASTO_WEBHOOK_SECRET": SECRET},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        started = time.monotonic()
        while time.monotonic() - started < 60:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        job_id = make_job(f"http://127.0.0.1:{port}/hook")
        assert deliver_now(job_id, "start") == "delivered"
        assert deliver_now(job_id, "completed", 10) == "delivered"
        assert deliver_now(job_id, "snapshot", 5) == "delivered"  # late: answered 204, not acted on
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert f"{job_id} start queued" in output and f"{job_id} completed queued" in output, output
    assert f"{job_id} snapshot" not in output, output
