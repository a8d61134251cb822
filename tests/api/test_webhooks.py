"""Webhook fields of POST /v1/jobs: validated, stored, shown in the job JSON."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from impasto.shared.events import stream_key
from impasto.shared.task_names import WEBHOOK_QUEUE
from tests.api.conftest import Images, Observed, keyed_client

SECRET = "whsec_Xfepk+j3eInQI0RmvVZZgVkqaV8TXG1zGi2rngse31E="  # made by `impasto webhook-secret`


def post_job(app: Flask, images: Images, **fields: Any) -> TestResponse:
    """POST /v1/jobs with a small content and style image and extra form fields."""
    data: dict[str, Any] = {
        "content": (io.BytesIO(images.jpeg), "content.jpg"),
        "style": [(io.BytesIO(images.png), "style.png")],
        "params": '{"iterations": 10, "size": 64}',
        **fields,
    }
    return keyed_client(app).post("/v1/jobs", data=data, content_type="multipart/form-data")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"webhook": "http://127.0.0.1:9/hook"}, "webhook"),
        ({"webhook": "http://localhost/hook"}, "webhook"),
        ({"webhook": "http://10.0.0.7/hook"}, "webhook"),
        ({"webhook": "http://169.254.169.254/"}, "webhook"),
        ({"webhook": "http://[::1]/hook"}, "webhook"),
        ({"webhook": "file:///etc/passwd"}, "webhook"),
        # read as 8.8.8.8 by urlsplit, as 127.0.0.1:9 by urllib3 (the HTTP client's parser)
        ({"webhook": "http://127.0.0.1:9\\@8.8.8.8/hook"}, "webhook"),
        ({"webhook": "http://user:pass@93.184.215.14/hook"}, "webhook"),
        ({"webhook": "http://93.184.215.14/hook\r\nX-Injected: 1"}, "webhook"),
        ({"webhook": "http://[::127.0.0.1]/hook"}, "webhook"),
        ({"webhook": "http://[64:ff9b::a9fe:a9fe]/hook"}, "webhook"),
        ({"webhook": "http://[2002:a00:1::1]/hook"}, "webhook"),
        ({"webhook": "https://93.184.215.14/h", "webhook_events_filter": "start,done"}, "webhook_events_filter"),
        ({"webhook_events_filter": "start"}, "webhook_events_filter"),
        # What the schema says, exactly: no empty or padded URL, one URL, and
        # filter values that are event names comma-separated, nothing stripped or skipped.
        ({"webhook": ""}, "webhook"),
        ({"webhook": " https://93.184.215.14/h"}, "webhook"),
        ({"webhook": "https://93.184.215.14/h "}, "webhook"),
        ({"webhook": ["https://93.184.215.14/a", "https://93.184.215.14/b"]}, "webhook"),
        ({"webhook": "https://93.184.215.14/h", "webhook_events_filter": "start, completed"}, "webhook_events_filter"),
        ({"webhook": "https://93.184.215.14/h", "webhook_events_filter": "start,"}, "webhook_events_filter"),
        ({"webhook": "https://93.184.215.14/h", "webhook_events_filter": ""}, "webhook_events_filter"),
        ({"webhook": "", "webhook_events_filter": "start"}, "webhook"),
    ],
)
def test_refused_webhooks_are_422(
    make_app: Callable[..., Flask], images: Images, observed: Observed, fields: dict[str, str], field: str
) -> None:
    """Private, loopback and link-local targets (loopback not allowed, nor IPv6 forms embedding them),
    other schemes, forms URL parsers disagree on, unknown events: 422."""
    app = make_app(webhook_secret=SECRET, webhook_allow_private=False)
    response = post_job(app, images, **fields)
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "invalid_webhook"
    assert error["details"][0]["field"] == field


def test_webhook_without_a_server_secret_is_422(make_app: Callable[..., Flask], images: Images) -> None:
    """No IMPASTO_WEBHOOK_SECRET: webhooks cannot be signed, so they are refused."""
    response = post_job(make_app(), images, webhook="https://93.184.215.14/hook")
    assert response.status_code == 422
    assert response.get_json()["error"]["details"][0]["field"] == "webhook"


def test_webhook_is_stored_and_shown(make_app: Callable[..., Flask], images: Images) -> None:
    """An accepted webhook and its filter are on the row and in the job JSON."""
    app = make_app(webhook_secret=SECRET, webhook_allow_private=True)
    response = post_job(app, images, webhook="http://127.0.0.1:9/hook", webhook_events_filter=["completed", "start"])
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert body["webhook"] == "http://127.0.0.1:9/hook"
    assert body["webhook_events_filter"] == ["completed", "start"]
    assert body["expired"] is False
    plain = post_job(app, images).get_json()
    assert plain["webhook"] is None and plain["webhook_events_filter"] is None


def test_canceling_a_queued_job_announces_its_end(make_app: Callable[..., Flask], images: Images, broker: Any) -> None:
    """No worker will ever see a job canceled while queued: the API sends its `status` event and its
    `completed` webhook itself, once, however often the cancel is repeated."""
    app = make_app(webhook_secret=SECRET, webhook_allow_private=True)
    client = keyed_client(app)
    data = {
        "content": (io.BytesIO(images.jpeg), "content.jpg"),
        "style": (io.BytesIO(images.png), "style.png"),
        "webhook": "http://127.0.0.1:9/hook",
    }
    job_id = client.post("/v1/jobs", data=data, content_type="multipart/form-data").get_json()["id"]
    for _ in range(2):
        assert client.post(f"/v1/jobs/{job_id}/cancel").get_json()["status"] == "canceled"
    events = [(f[b"event"], json.loads(f[b"data"])) for _, f in broker.xrange(stream_key(job_id))]
    assert events == [(b"status", {"status": "canceled", "error": None})]
    deliveries = [json.loads(b)["headers"]["argsrepr"] for b in broker.lrange(WEBHOOK_QUEUE, 0, -1)]
    assert deliveries == [f"['{job_id}', 'completed', 0]"]
