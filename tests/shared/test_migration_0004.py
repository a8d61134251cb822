"""Migration 0004 (API keys, job owners, scoped idempotency keys) on a database with data in it,
up and down, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import create_engine, inspect, text

from impasto.shared.database import alembic_config
from impasto.shared.settings import Settings

JOB_ID = "0b9f6c1e-3a57-4a0e-9a6e-2f1d7c6b5a49"
OLD_ROWS = [
    "INSERT INTO jobs (id, status, created_at, params, content_key, style_keys, queue, iteration, iterations,"
    " attempts, cancel_requested) VALUES"
    f" ('{JOB_ID}', 'queued', '2026-11-28 12:00:00+00', '{{}}', 'c', '[]', 'transfer', 0, 10, 0, false)",
    f"INSERT INTO idempotency_keys (key, request_hash, job_id, expires_at) VALUES ('k', 'h', '{JOB_ID}',"
    " '2099-01-01 00:00:00+00')",
]


def test_upgrade_keeps_jobs_ownerless_and_downgrade_reverses(empty_database: str, tmp_path: Path) -> None:
    """Old jobs survive with no owner (no key sees them); old idempotency records go; down and up again work."""
    config = alembic_config(Settings(data_dir=tmp_path, database_url=empty_database))
    command.upgrade(config, "0003")
    engine = create_engine(empty_database)
    try:
        with engine.begin() as connection:
            for statement in OLD_ROWS:
                connection.execute(text(statement))
        command.upgrade(config, "0004")
        with engine.connect() as connection:
            assert connection.execute(text("SELECT id, owner_key_id FROM jobs")).all() == [(JOB_ID, None)]
            assert connection.execute(text("SELECT count(*) FROM idempotency_keys")).scalar() == 0
        schema = inspect(engine)
        assert {"api_keys", "jobs"} <= set(schema.get_table_names())
        assert [fk["referred_table"] for fk in schema.get_foreign_keys("jobs")] == ["api_keys"]
        assert {"ix_jobs_owner_created", "ix_jobs_owner_status"} <= {ix["name"] for ix in schema.get_indexes("jobs")}
        key_column = next(c for c in schema.get_columns("idempotency_keys") if c["name"] == "key")
        assert key_column["type"].length == 300

        command.downgrade(config, "0003")
        schema = inspect(engine)
        assert "api_keys" not in schema.get_table_names()
        assert "owner_key_id" not in {c["name"] for c in schema.get_columns("jobs")}
        with engine.connect() as connection:
            assert connection.execute(text("SELECT id FROM jobs")).scalars().all() == [JOB_ID]
        command.upgrade(config, "head")
    finally:
        engine.dispose()
