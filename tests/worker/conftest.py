"""A worker context on a fresh database (SQLite and PostgreSQL) with the sample images stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from impasto.shared.celery_app import make_celery
from impasto.shared.database import upgrade_database
from impasto.shared.job_params import JobParams
from impasto.shared.jobs import create_job
from impasto.shared.settings import get_settings
from impasto.shared.storage import upload_key
from impasto.worker.context import WorkerContext, build_context
from tests.conftest import create_postgres_database, drop_postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
def ctx(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WorkerContext]:
    """A WorkerContext on an empty, migrated database of each kind, CPU, fast progress writes."""
    name = None
    database_url = None
    if request.param == "postgresql":
        name, database_url = create_postgres_database()
    settings = get_settings(
        data_dir=tmp_path / "data", database_url=database_url, storage_url=f"file://{tmp_path / 'storage'}",
        progress_interval_s=0.0, cancel_poll_s=0.0, device="cpu", lease_seconds=30,
    )  # fmt: skip
    upgrade_database(settings)
    context = build_context(settings, make_celery(settings))
    yield context
    context.sessions.kw["bind"].dispose()
    if name:
        drop_postgres_database(name)


def make_job(ctx: WorkerContext, samples: Path, **params: Any) -> str:
    """Store the sample images and insert a queued job; returns its id."""
    keys = []
    for name in ("chelsea.jpg", "starry_night.jpg"):
        data = (samples / name).read_bytes()
        keys.append(upload_key(data, "jpg"))
        ctx.storage.put(keys[-1], data)
    values = JobParams(**{"size": 48, "iterations": 12, "snapshot_every": 4, **params}).model_dump(mode="json")
    with ctx.sessions() as session:
        job = create_job(session, params=values, content_key=keys[0], style_keys=keys[1:], queue="transfer")
        session.commit()
        return job.id
