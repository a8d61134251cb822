"""Status polls read on their own engine (autocommit, no ping on checkout): a connection that the
database dropped is replaced by a retry, not answered with a 500."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.engine import make_url

from tests.api.conftest import Submit
from tests.conftest import _admin


def test_a_poll_survives_the_database_dropping_its_connections(
    app: Flask, client: FlaskClient, submit: Submit, database_url: str
) -> None:
    """As after a PostgreSQL restart: every pooled connection is closed by the server; the next poll is served."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has no server to drop connections")
    job_id = submit().get_json()["id"]
    assert client.get(f"/v1/jobs/{job_id}").status_code == 200  # a read connection is now pooled
    with _admin() as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (make_url(database_url).database,),
        )
    response = client.get(f"/v1/jobs/{job_id}")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["id"] == job_id
    assert client.get("/v1/jobs").status_code == 200
