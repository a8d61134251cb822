"""Liveness and readiness."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from tests.api.conftest import DEAD_BROKER_URL, impasto_of, keyed_client

# Well-formed, so the API has to ask the database about it.
SOME_KEY = "imp_0123456789ab_" + "A" * 43


def test_healthz(client: FlaskClient) -> None:
    """The process answers."""
    response = client.get("/healthz")
    assert (response.status_code, response.get_json()) == (200, {"status": "ok"})


def test_readyz_ready(client: FlaskClient) -> None:
    """SQL and Redis both reachable."""
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}


def test_readyz_broker_down(make_app: Callable[..., Flask]) -> None:
    """A Redis that refuses connections: 503 naming the broker."""
    response = make_app(broker_url=DEAD_BROKER_URL).test_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable"
    assert body["checks"] == {"database": "ok", "broker": "down"}
    assert body["error"]["code"] == "not_ready"
    assert "broker" in body["error"]["message"]


def test_readyz_database_down(make_app: Callable[..., Flask], tmp_path: Path) -> None:
    """A database that cannot be opened: 503 naming the database."""
    app = make_app(database_url=f"sqlite:///{tmp_path / 'missing-dir' / 'db.sqlite3'}")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"] == {"database": "down", "broker": "ok"}


def test_readyz_embedded_broker(make_app: Callable[..., Flask]) -> None:
    """The filesystem broker is ready while its folder is writable, and down without it."""
    app = make_app(broker_url=None)
    client = app.test_client()
    assert client.get("/readyz").status_code == 200
    shutil.rmtree(impasto_of(app).settings.broker_folder())
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["broker"] == "down"


def test_database_down_answers_503_json(make_app) -> None:  # type: ignore[no-untyped-def]
    """With SQL unreachable a job read (its key check first) is 503 database_unavailable, JSON, no traceback."""
    app = make_app(database_url="postgresql+psycopg://postgres@127.0.0.1:1/none")
    response = keyed_client(app, SOME_KEY).get("/v1/jobs/6f1c1f0e-3d2a-4a8e-9a57-0d8f0b2b8c11")
    assert response.status_code == 503
    assert response.json["error"]["code"] == "database_unavailable"
    assert "Traceback" not in response.get_data(as_text=True)
