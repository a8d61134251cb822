"""Fixtures every test folder may use: a fresh PostgreSQL database, a flushed Redis database,
and the bundled sample images. The services are the real ones (`make test` starts them)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
# IMPASTO_TEST_REDIS lets several test runs on one machine use separate redis-servers.
REDIS_BASE = os.environ.get("IMPASTO_TEST_REDIS", "redis://127.0.0.1:6379")
SAMPLES = Path(__file__).resolve().parent.parent / "shared" / "samples"


def _admin() -> psycopg.Connection:
    for dsn in (POSTGRES_ADMIN, "postgresql://root@127.0.0.1:5432/postgres"):
        try:
            return psycopg.connect(dsn, autocommit=True)
        except psycopg.OperationalError:
            continue
    raise RuntimeError("PostgreSQL is not reachable at 127.0.0.1:5432 (run deploy/local/ensure-services.sh)")


def create_postgres_database() -> tuple[str, str]:
    """Create an empty, uniquely named database; returns (name, SQLAlchemy URL)."""
    name = f"impasto_test_{uuid.uuid4().hex[:12]}"
    with _admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        user = conn.info.user
    return name, f"postgresql+psycopg://{user}@127.0.0.1:5432/{name}"


def drop_postgres_database(name: str) -> None:
    """Drop a test database, closing what still holds it."""
    with _admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    name, url = create_postgres_database()
    yield url
    drop_postgres_database(name)


def flushed_redis(db: int) -> Iterator[str]:
    """The URL of Redis database `db`, flushed before and after its test."""
    url = f"{REDIS_BASE}/{db}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis database (number 14) flushed before and after the test."""
    yield from flushed_redis(14)


@pytest.fixture
def redis_12() -> Iterator[str]:
    """Redis database 12, flushed before and after: the one the tests that start processes share."""
    yield from flushed_redis(12)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with no tables yet, of each kind the migrations must run on."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'migrate.sqlite3'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture(scope="session")
def samples() -> Path:
    """The folder of bundled sample images (chelsea.jpg, starry_night.jpg, ...)."""
    return SAMPLES
