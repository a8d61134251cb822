"""JSON errors, request ids, and 500s without tracebacks."""

from __future__ import annotations

import logging
import uuid

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.api.conftest import keyed_client


def test_unknown_route_is_json_404(client: FlaskClient) -> None:
    """Routing errors are JSON too."""
    response = client.get("/v2/nothing")
    assert response.status_code == 404
    assert response.is_json
    assert response.get_json()["error"]["code"] == "not_found"


def test_wrong_method_is_json_405_with_allow(client: FlaskClient) -> None:
    """405 keeps its Allow header."""
    response = client.put("/v1/jobs")
    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == "method_not_allowed"
    assert {"GET", "POST"} <= {m.strip() for m in response.headers["Allow"].split(",")}


def test_every_response_has_a_request_id(client: FlaskClient) -> None:
    """A fresh uuid4 per request, on successes and errors alike."""
    ids = [client.get(path).headers["X-Request-ID"] for path in ("/healthz", "/healthz", "/v1/jobs/nope")]
    assert len(set(ids)) == 3
    assert all(uuid.UUID(value).version == 4 for value in ids)


def test_unhandled_error_is_500_without_traceback(app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    """The client gets a code and the request id; the log gets the traceback and the id."""

    def explode() -> str:
        """Fail the way a bug would."""
        raise RuntimeError("secret detail from deep inside")

    app.add_url_rule("/test-explode", "explode", explode)
    with caplog.at_level(logging.ERROR):
        response = keyed_client(app).get("/test-explode")
    assert response.status_code == 500
    body = response.get_json()
    request_id = response.headers["X-Request-ID"]
    assert body == {"error": {"code": "internal_error", "message": "internal error", "request_id": request_id}}
    text = response.get_data(as_text=True)
    assert "Traceback" not in text and "secret detail" not in text
    (record,) = [r for r in caplog.records if request_id in r.getMessage()]
    assert record.exc_info is not None and "secret detail" in str(record.exc_info[1])
