"""Abuse limits: a per-key request rate (flask-limiter) and a cap on each key's unfinished jobs.
Both answer 429 JSON with Retry-After, and a refused submission stores nothing."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from impasto.api.quota import QUOTA_RETRY_AFTER_S
from impasto.api.rate_limit import KEY_PREFIX
from impasto.shared.status import JobStatus
from tests.api.conftest import DEAD_BROKER_URL, Images, Observed, Submit, WorkerActions, keyed_client
from tests.api.test_idempotency import post


def assert_429(response: TestResponse, code: str) -> int:
    """A JSON 429 with its code and a positive whole-second Retry-After; returns the seconds."""
    assert response.status_code == 429, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == code and error["message"]
    retry_after = int(response.headers["Retry-After"])
    assert retry_after > 0
    return retry_after


@pytest.mark.parametrize("broker_url", ["redis", "embedded"])
def test_rate_limit_per_key(make_app: Callable[..., Flask], broker: redis.Redis, broker_url: str) -> None:
    """The key's 4th request in a minute is refused; another key and the public probes are not."""
    app = make_app(rate_limit="3 per minute", **({"broker_url": None} if broker_url == "embedded" else {}))
    first, second = keyed_client(app), keyed_client(app)
    assert [first.get("/v1/jobs").status_code for _ in range(3)] == [200, 200, 200]
    retry_after = assert_429(first.get("/v1/jobs"), "rate_limited")
    assert retry_after <= 61
    assert "Retry-After" not in second.get("/v1/jobs").headers  # B has its own budget
    assert [app.test_client().get("/healthz").status_code for _ in range(5)] == [200] * 5
    if broker_url == "redis":  # counters are shared by every API process through Redis
        assert broker.keys(f"*{KEY_PREFIX}*")


def test_unauthenticated_requests_do_not_spend_a_keys_budget(make_app: Callable[..., Flask]) -> None:
    """401s are refused before the limiter, so nobody can exhaust a key they do not hold."""
    app = make_app(rate_limit="2 per minute")
    anonymous = app.test_client()
    assert {anonymous.get("/v1/jobs").status_code for _ in range(5)} == {401}
    client = keyed_client(app)
    assert [client.get("/v1/jobs").status_code for _ in range(2)] == [200, 200]


def test_rate_limited_submission_stores_nothing(
    make_app: Callable[..., Flask], broker: redis.Redis, submit: Submit
) -> None:
    """The refused submit leaves no row, file or message."""
    app = make_app(rate_limit="1 per minute")
    client = keyed_client(app)
    assert client.get("/v1/jobs").status_code == 200
    assert_429(submit(with_client=client), "rate_limited")
    observed = Observed(app, broker)
    assert (observed.job_count(), observed.stored_files(), observed.queued()) == (0, [], [])


def test_rate_limit_store_down_keeps_serving(make_app: Callable[..., Flask]) -> None:
    """With Redis for counters unreachable, requests are served and limited in memory, never 500."""
    app = make_app(rate_limit="2 per minute", rate_limit_storage_url=DEAD_BROKER_URL)
    client = keyed_client(app)
    assert [client.get("/v1/jobs").status_code for _ in range(3)] == [200, 200, 429]


@pytest.fixture
def capped(make_app: Callable[..., Flask], images: Images) -> tuple[Flask, FlaskClient, WorkerActions]:
    """An app allowing two unfinished jobs per key, a client, and worker actions on it."""
    app = make_app(max_active_jobs=2)
    return app, keyed_client(app), WorkerActions(app, images.png)


def test_active_jobs_cap(capped: tuple[Flask, FlaskClient, WorkerActions], submit: Submit, broker: redis.Redis) -> None:
    """Two unfinished jobs: the third is a 429 that stores nothing; a finished or canceled job frees a slot."""
    app, client, worker = capped
    observed = Observed(app, broker)
    running, queued = (submit(with_client=client).get_json()["id"] for _ in range(2))
    worker.claim(running)
    files, messages = observed.stored_files(), observed.queued()
    retry_after = assert_429(submit(with_client=client), "too_many_active_jobs")
    assert retry_after == QUOTA_RETRY_AFTER_S
    assert (observed.job_count(), observed.stored_files(), observed.queued()) == (2, files, messages)

    worker.finish(running, JobStatus.SUCCEEDED)
    assert submit(with_client=client).status_code == 202
    assert_429(submit(with_client=client), "too_many_active_jobs")
    assert client.post(f"/v1/jobs/{queued}/cancel").status_code == 200
    assert submit(with_client=client).status_code == 202


def test_active_jobs_cap_is_per_key(capped: tuple[Flask, FlaskClient, WorkerActions], submit: Submit) -> None:
    """A key at its cap does not stop another key."""
    app, client, _worker = capped
    for _ in range(2):
        submit(with_client=client)
    assert_429(submit(with_client=client), "too_many_active_jobs")
    assert submit(with_client=keyed_client(app)).status_code == 202


def test_a_retry_of_an_accepted_job_is_not_capped(
    capped: tuple[Flask, FlaskClient, WorkerActions], images: Images
) -> None:
    """An Idempotency-Key replay returns the existing job even at the cap: it adds none."""
    _app, client, _worker = capped
    first = post(client, images, "again", {"iterations": 10})
    post(client, images, None, {})
    replay = post(client, images, "again", {"iterations": 10})
    assert replay.status_code == 202 and replay.get_json()["id"] == first.get_json()["id"]
    assert_429(post(client, images, "new", {}), "too_many_active_jobs")


def from_address(client: FlaskClient, address: str) -> FlaskClient:
    """The client, its requests coming from `address` (request.remote_addr)."""
    client.environ_base["REMOTE_ADDR"] = address
    return client


def test_failed_authentications_are_limited_per_address(make_app: Callable[..., Flask]) -> None:
    """Past the limit of refused keys, an address gets 429 with Retry-After, even for a good key; others do not."""
    app = make_app(failed_auth_limit="5 per minute")
    guesser = from_address(app.test_client(), "203.0.113.7")
    bad = {"Authorization": "Bearer imp_0123456789ab_" + "x" * 43}
    assert [guesser.get("/v1/jobs", headers=bad).status_code for _ in range(5)] == [401] * 5
    retry_after = assert_429(guesser.get("/v1/jobs", headers=bad), "too_many_failed_authentications")
    assert retry_after <= 61
    # The address is refused before any key lookup, so a good key from it waits too (documented).
    assert_429(from_address(keyed_client(app), "203.0.113.7").get("/v1/jobs"), "too_many_failed_authentications")
    assert from_address(keyed_client(app), "198.51.100.1").get("/v1/jobs").status_code == 200
    assert from_address(app.test_client(), "198.51.100.1").get("/v1/jobs", headers=bad).status_code == 401
    # Public routes need no key and are not refused.
    assert guesser.get("/healthz").status_code == 200


def test_a_key_verified_moments_ago_is_not_held_up_by_its_address(make_app: Callable[..., Flask]) -> None:
    """A key this process found valid within api_key_cache_s is no guess: its address's failures do not stop it;
    a good key not verified yet still waits with its address."""
    app = make_app(failed_auth_limit="2 per minute", api_key_cache_s=1.0)
    known = from_address(keyed_client(app), "203.0.113.9")
    assert known.get("/v1/jobs").status_code == 200  # verified, and cached for up to 1 s
    guesser = from_address(app.test_client(), "203.0.113.9")
    bad = {"Authorization": "Bearer not-a-key"}
    assert [guesser.get("/v1/jobs", headers=bad).status_code for _ in range(3)] == [401, 401, 429]
    assert known.get("/v1/jobs").status_code == 200
    assert_429(from_address(keyed_client(app), "203.0.113.9").get("/v1/jobs"), "too_many_failed_authentications")


def test_successful_authentications_are_not_counted(make_app: Callable[..., Flask]) -> None:
    """A busy client with a good key never approaches the failed-auth limit; a request without a key guesses nothing."""
    app = make_app(failed_auth_limit="3 per minute")
    client = from_address(keyed_client(app), "192.0.2.9")
    assert {client.get("/v1/jobs").status_code for _ in range(10)} == {200}
    anonymous = from_address(app.test_client(), "192.0.2.9")
    assert {anonymous.get("/v1/jobs").status_code for _ in range(5)} == {401}
    bad = {"Authorization": "Bearer not-a-key"}
    assert [anonymous.get("/v1/jobs", headers=bad).status_code for _ in range(4)] == [401, 401, 401, 429]


def test_failed_authentications_are_counted_across_api_processes(make_app: Callable[..., Flask]) -> None:
    """Two apps on one Redis (two gunicorn processes) share the count of an address's refused keys."""
    first, second = make_app(failed_auth_limit="4 per minute"), make_app(failed_auth_limit="4 per minute")
    bad = {"Authorization": "Bearer not-a-key"}
    for app in (first, second, first, second):
        assert from_address(app.test_client(), "203.0.113.8").get("/v1/jobs", headers=bad).status_code == 401
    assert_429(
        from_address(second.test_client(), "203.0.113.8").get("/v1/jobs", headers=bad),
        "too_many_failed_authentications",
    )
