"""API fixtures: an app on each database (a SQLite file, PostgreSQL), a flushed Redis broker
database, file storage in tmp_path, small Pillow-made images, API keys and clients that send
them, and worker-side state changes made through impasto.shared.jobs, as a worker makes them."""

from __future__ import annotations

import base64
import io
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from impasto.api import create_app
from impasto.api.context import EXTENSION_KEY, Impasto
from impasto.shared.api_keys import create_key
from impasto.shared.database import upgrade_database
from impasto.shared.jobs import UNWATCHED, add_snapshot, claim_job, finish_job
from impasto.shared.models import Job
from impasto.shared.settings import Settings
from impasto.shared.status import JobStatus
from impasto.shared.storage import output_key, snapshot_key
from impasto.shared.task_names import TRANSFER_QUEUE
from tests.conftest import REDIS_BASE, create_postgres_database, drop_postgres_database

# A Redis database of the API tests' own (other folders use 14), flushed around each test.
REDIS_URL = f"{REDIS_BASE}/13"
# A port nothing listens on: a broker that is down.
DEAD_BROKER_URL = "redis://127.0.0.1:1/0"
TABLES = ("idempotency_keys", "job_snapshots", "job_status_history", "jobs", "api_keys")  # children first
WORKER_NAME = "gpu0@test-host"


def image_bytes(image_format: str, size: tuple[int, int] = (64, 48), **save: Any) -> bytes:
    """A small gradient image encoded with Pillow."""
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, image_format, **save)
    return buffer.getvalue()


@dataclass(frozen=True)
class Images:
    """Encoded test images."""

    jpeg: bytes
    png: bytes
    webp: bytes


@pytest.fixture(scope="session")
def images() -> Images:
    """A 64x48 JPEG, a 32x24 PNG and a 40x30 WebP."""
    return Images(jpeg=image_bytes("JPEG"), png=image_bytes("PNG", (32, 24)), webp=image_bytes("WEBP", (40, 30)))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (cheaper than migrating each time)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "impasto.sqlite3"
    upgrade_database(Settings(data_dir=path.parent, database_url=f"sqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A migrated PostgreSQL database for the session, dropped at its end."""
    name, url = create_postgres_database()
    try:
        upgrade_database(Settings(database_url=url))
        yield url
    finally:
        drop_postgres_database(name)


def truncate_postgres(url: str) -> None:
    """Empty the tables, keeping the schema (DELETE: ten times faster than TRUNCATE on tables this small)."""
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        for table in TABLES:  # children before the tables they point at
            conn.execute(f"DELETE FROM {table}")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """An empty, migrated database of each kind."""
    if request.param == "sqlite":
        path = tmp_path / "impasto.sqlite3"
        shutil.copyfile(sqlite_template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_database")
    truncate_postgres(url)
    return url


@pytest.fixture
def broker() -> Iterator[redis.Redis]:
    """The Redis database the API enqueues into, flushed before and after the test."""
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def make_settings(tmp_path: Path, database_url: str, broker: redis.Redis) -> Callable[..., Settings]:
    """Settings for a test app; keyword arguments override."""

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "database_url": database_url,
            "broker_url": REDIS_URL,
            "storage_url": f"file://{tmp_path / 'storage'}",
        }
        values.update(overrides)
        return Settings(**values)

    return build


@pytest.fixture
def make_app(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Flask]]:
    """Build apps with setting overrides; their pools are closed after the test."""
    apps: list[Flask] = []

    def build(**overrides: Any) -> Flask:
        app = create_app(make_settings(**overrides))
        app.config["TESTING"] = True
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions[EXTENSION_KEY].close()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """The API on a fresh database, Redis broker and empty storage."""
    return make_app()


def impasto_of(app: Flask) -> Impasto:
    """The app's SQL, storage and Celery parts."""
    impasto: Impasto = app.extensions[EXTENSION_KEY]
    return impasto


def add_key(app: Flask, name: str = "test") -> str:
    """A new API key in the app's database."""
    with impasto_of(app).sessions() as session:
        return create_key(session, name)[1]


def keyed_client(app: Flask, key: str | None = None) -> FlaskClient:
    """A test client that sends `key` (default: a new one) as its Bearer token on every request."""
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key or add_key(app)}"
    return client


@pytest.fixture
def api_key(app: Flask) -> str:
    """The API key the default client sends."""
    return add_key(app, "key-a")


@pytest.fixture
def client(app: Flask, api_key: str) -> FlaskClient:
    """A test client of the app, authenticated with `api_key`."""
    return keyed_client(app, api_key)


@pytest.fixture
def anonymous(app: Flask) -> FlaskClient:
    """A test client that sends no Authorization header."""
    return app.test_client()


Submit = Callable[..., TestResponse]


@pytest.fixture
def submit(client: FlaskClient, images: Images) -> Submit:
    """POST /v1/jobs: by default a JPEG content, one PNG style and fast params."""

    def post(
        content: bytes | None = images.jpeg,
        styles: list[bytes] | None = None,
        params: dict[str, Any] | str | None = None,
        with_client: FlaskClient | None = None,
    ) -> TestResponse:
        data: dict[str, Any] = {}
        if content is not None:
            data["content"] = (io.BytesIO(content), "content.jpg")
        styles = [images.png] if styles is None else styles
        data["style"] = [(io.BytesIO(style), f"style{index}.png") for index, style in enumerate(styles)]
        if params is not None:
            data["params"] = params if isinstance(params, str) else json.dumps(params)
        return (with_client or client).post("/v1/jobs", data=data, content_type="multipart/form-data")

    return post


@dataclass
class Observed:
    """What a request left behind: rows, stored files, queued messages."""

    app: Flask
    broker: redis.Redis

    def job_count(self) -> int:
        """Rows in the jobs table."""
        with impasto_of(self.app).sessions() as session:
            return session.scalar(select(func.count()).select_from(Job)) or 0

    def job(self, job_id: str) -> Job:
        """A job row, with its history and snapshots loaded."""
        with impasto_of(self.app).sessions() as session:
            job = session.get(Job, job_id)
            assert job is not None
            _ = job.history, job.snapshots
            return job

    def stored_files(self) -> list[str]:
        """Every file under the storage root, relative."""
        root = Path(impasto_of(self.app).settings.resolved_storage_url().removeprefix("file://"))
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

    def queued(self) -> list[dict[str, Any]]:
        """The kombu messages waiting in the transfer queue (a Redis list)."""
        return [json.loads(raw) for raw in self.broker.lrange(TRANSFER_QUEUE, 0, -1)]

    def queued_job_ids(self) -> list[str]:
        """The job ids named by the queued impasto.transfer messages."""
        ids = []
        for message in self.queued():
            args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
            ids.append(args[0])
        return ids


@pytest.fixture
def observed(app: Flask, broker: redis.Redis) -> Observed:
    """Inspect the default app's database, storage and queue."""
    return Observed(app, broker)


@dataclass
class WorkerActions:
    """Moves a job as a worker would, through impasto.shared.jobs and storage."""

    app: Flask
    png: bytes

    def claim(self, job_id: str) -> None:
        """Take the job: queued -> running."""
        with impasto_of(self.app).sessions() as session:
            assert claim_job(session, job_id, WORKER_NAME, lease_seconds=60)

    def snapshot(self, job_id: str, iteration: int) -> None:
        """Store and record an intermediate image."""
        impasto = impasto_of(self.app)
        key = snapshot_key(job_id, iteration)
        impasto.storage.put(key, self.png)
        with impasto.sessions() as session:
            add_snapshot(session, job_id, iteration, key)

    def finish(self, job_id: str, status: JobStatus, **values: Any) -> None:
        """End a running job; a succeeded one gets its output stored first."""
        impasto = impasto_of(self.app)
        if status == JobStatus.SUCCEEDED:
            impasto.storage.put(output_key(job_id), self.png)
            values.setdefault("output_key", output_key(job_id))
        with impasto.sessions() as session:
            assert finish_job(session, job_id, WORKER_NAME, status, UNWATCHED, **values)


@pytest.fixture
def worker_actions(app: Flask, images: Images) -> WorkerActions:
    """Worker-side state changes on the default app's database and storage."""
    return WorkerActions(app, images.png)
