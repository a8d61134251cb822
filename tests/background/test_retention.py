"""Retention: finished jobs' images are deleted after the setting; the row stays; URLs answer 410."""

from __future__ import annotations

import time
from pathlib import Path

from alembic import command
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, inspect, text

from impasto.background.retention import expire_jobs
from impasto.shared.database import alembic_config
from impasto.shared.settings import Settings
from impasto.shared.status import JobStatus
from tests.api.conftest import Observed, Submit, WorkerActions, impasto_of


def test_retention_expires_images(
    app: Flask, client: FlaskClient, submit: Submit, worker_actions: WorkerActions, observed: Observed
) -> None:
    """Only finished jobs past retention lose their files; their image URLs then answer 410 `expired`."""
    done = submit().get_json()["id"]
    worker_actions.claim(done)
    worker_actions.snapshot(done, 5)
    worker_actions.finish(done, JobStatus.SUCCEEDED)
    running = submit().get_json()["id"]
    worker_actions.claim(running)
    worker_actions.snapshot(running, 5)
    impasto = impasto_of(app)
    settings = impasto.settings.model_copy(update={"retention_s": 3600.0})
    assert expire_jobs(impasto.sessions, impasto.storage, settings) == []  # finished just now: kept
    time.sleep(0.05)
    settings = settings.model_copy(update={"retention_s": 0.01})
    assert expire_jobs(impasto.sessions, impasto.storage, settings) == [done]
    assert expire_jobs(impasto.sessions, impasto.storage, settings) == []  # a second pass (or copy): nothing
    assert not [path for path in observed.stored_files() if path.startswith(f"jobs/{done}/")]
    assert [path for path in observed.stored_files() if path.startswith(f"jobs/{running}/")]
    body = client.get(f"/v1/jobs/{done}").get_json()
    assert body["status"] == "succeeded" and body["expired"] is True
    for url in (f"/v1/jobs/{done}/output", f"/v1/jobs/{done}/intermediates/5"):
        response = client.get(url)
        assert response.status_code == 410
        assert response.get_json()["error"]["code"] == "expired"
    assert client.get(f"/v1/jobs/{running}/intermediates/5").status_code == 200
    assert observed.job(done).expired_at is not None


def test_retention_deletes_previews_with_the_images(
    app: Flask, client: FlaskClient, submit: Submit, worker_actions: WorkerActions, observed: Observed
) -> None:
    """The previews of an expired job's final image and snapshots (stored beside them under the job's prefix)
    go with them; an expired job's previews answer 410 and are not made again."""
    done = submit().get_json()["id"]
    worker_actions.claim(done)
    worker_actions.snapshot(done, 5)
    worker_actions.finish(done, JobStatus.SUCCEEDED)
    urls = [f"/v1/jobs/{done}/output?preview=true", f"/v1/jobs/{done}/intermediates/5?preview=true"]
    assert [client.get(url).status_code for url in urls] == [200, 200]
    previews = [path for path in observed.stored_files() if path.endswith(".preview.jpg")]
    assert sorted(previews) == sorted([f"jobs/{done}/final.preview.jpg", f"jobs/{done}/snapshots/000005.preview.jpg"])
    impasto = impasto_of(app)
    time.sleep(0.02)
    assert expire_jobs(impasto.sessions, impasto.storage, impasto.settings.model_copy(update={"retention_s": 0.01}))
    assert not [path for path in observed.stored_files() if path.startswith(f"jobs/{done}/")]
    assert [client.get(url).status_code for url in urls] == [410, 410]
    assert not [path for path in observed.stored_files() if path.startswith(f"jobs/{done}/")]


def test_migration_0005_up_down_up(empty_database: str, tmp_path: Path) -> None:
    """0005 adds the webhook and expiry columns to a jobs table with rows, and reverses cleanly."""
    config = alembic_config(Settings(data_dir=tmp_path, database_url=empty_database))
    command.upgrade(config, "0004")
    engine = create_engine(empty_database)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO jobs (id, status, created_at, params, content_key, style_keys, queue, iteration,"
                    " iterations, attempts, cancel_requested) VALUES ('j1', 'succeeded', '2026-11-28 12:00:00+00',"
                    " '{}', 'c', '[]', 'transfer', 0, 10, 0, false)"
                )
            )
        command.upgrade(config, "0005")
        added = {"webhook_url", "webhook_events", "expired_at"}
        assert added <= {c["name"] for c in inspect(engine).get_columns("jobs")}
        with engine.connect() as connection:
            row = connection.execute(text("SELECT id, webhook_url, expired_at FROM jobs")).one()
            assert tuple(row) == ("j1", None, None)
        command.downgrade(config, "0004")
        assert not added & {c["name"] for c in inspect(engine).get_columns("jobs")}
        command.upgrade(config, "head")
    finally:
        engine.dispose()
