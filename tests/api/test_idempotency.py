"""Idempotency-Key on POST /v1/jobs: a retry finds the first job; a different request gets 409."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update
from werkzeug.test import TestResponse

from impasto.shared.models import IdempotencyKey, utcnow
from tests.api.conftest import Images, Observed, impasto_of, keyed_client


def post(client: FlaskClient, images: Images, key: str | None, params: dict[str, Any], **fields: str) -> TestResponse:
    """Submit the test images with an optional Idempotency-Key and extra form fields."""
    data = {
        "content": (io.BytesIO(images.jpeg), "c.jpg"),
        "style": [(io.BytesIO(images.png), "s.png")],
        "params": json.dumps(params),
        **fields,
    }
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post("/v1/jobs", data=data, content_type="multipart/form-data", headers=headers)


def test_same_key_same_request_returns_the_same_job(client: FlaskClient, images: Images, observed: Observed) -> None:
    """A retried submit creates nothing new and answers with the first job."""
    first = post(client, images, "retry-1", {"iterations": 10})
    second = post(client, images, "retry-1", {"iterations": 10})
    assert first.status_code == second.status_code == 202
    assert second.json["id"] == first.json["id"]
    assert second.headers["Idempotent-Replayed"] == "true"
    assert observed.job_count() == 1 and observed.queued_job_ids() == [first.json["id"]]


def test_same_key_different_request_is_a_conflict(client: FlaskClient, images: Images, observed: Observed) -> None:
    """Reusing a key for other params answers 409 and stores no second job."""
    assert post(client, images, "k", {"iterations": 10}).status_code == 202
    response = post(client, images, "k", {"iterations": 11})
    assert response.status_code == 409 and response.json["error"]["code"] == "idempotency_key_reused"
    assert observed.job_count() == 1


def test_same_key_with_another_webhook_is_a_conflict(
    make_app: Callable[..., Flask], images: Images, observed: Observed
) -> None:
    """The webhook is part of the request: another URL or events filter under the same key answers 409."""
    client = keyed_client(make_app(webhook_secret="whsec_" + "A" * 43, webhook_allow_private=True))
    hook = {"webhook": "http://127.0.0.1:9/a"}
    assert post(client, images, "w", {}, **hook).status_code == 202
    assert post(client, images, "w", {}, **hook).headers["Idempotent-Replayed"] == "true"
    for other in ({"webhook": "http://127.0.0.1:9/b"}, {**hook, "webhook_events_filter": "completed"}, {}):
        response = post(client, images, "w", {}, **other)
        assert response.status_code == 409 and response.json["error"]["code"] == "idempotency_key_reused", other


def test_without_a_key_each_submit_is_a_new_job(client: FlaskClient, images: Images, observed: Observed) -> None:
    """No header, no deduplication."""
    assert post(client, images, None, {}).json["id"] != post(client, images, None, {}).json["id"]
    assert observed.job_count() == 2


def test_an_expired_key_makes_a_new_job(client: FlaskClient, images: Images, observed: Observed) -> None:
    """After the key's time-to-live the same key starts afresh."""
    first = post(client, images, "old", {}).json["id"]
    with impasto_of(observed.app).sessions() as session:
        session.execute(update(IdempotencyKey).values(expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()
    second = post(client, images, "old", {}).json["id"]
    assert second != first and observed.job_count() == 2


def test_an_overlong_key_is_refused(client: FlaskClient, images: Images, observed: Observed) -> None:
    """A key over 255 characters is a 400 and nothing is stored."""
    response = post(client, images, "x" * 256, {})
    assert response.status_code == 400 and observed.job_count() == 0
