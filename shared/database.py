"""The SQL engine, sessions and migrations, built from settings when called."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from impasto.shared.settings import Settings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def make_engine(settings: Settings, *, reads_only: bool = False) -> Engine:
    """A SQLAlchemy engine for the configured database.

    `reads_only`: an engine for the API's hot reads (status polls): each statement commits on its
    own, so a read is one round trip with no BEGIN or ROLLBACK, and connections are not pinged on
    checkout; its caller retries a read once when the connection turns out broken (impasto.api.context).
    """
    url = settings.resolved_database_url()
    options: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"} if reads_only else {}
    if url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # The API and a worker write the same file: wait for a lock instead of failing at once.
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **options)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    # pre_ping: a connection broken by a database restart is replaced, not handed out.
    # pool_size: connections kept open per process. An API process serves up to 64 threads at
    # once; with 5 kept, every request past the fifth opened and closed its own connection
    # (~22 new PostgreSQL sessions a second under bench.api_load). Connections are opened
    # lazily, so a worker process, which needs two, still holds two.
    return create_engine(url, pool_pre_ping=not reads_only, pool_size=16, max_overflow=16, **options)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded attributes after commit (rows are serialised afterwards)."""
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(settings: Settings) -> Config:
    """Alembic configuration pointing at impasto's migrations and the configured database."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", settings.resolved_database_url().replace("%", "%%"))
    return config


def upgrade_database(settings: Settings) -> None:
    """Apply every migration up to head (idempotent)."""
    if settings.resolved_database_url().startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(settings), "head")
