"""The Alembic migrations against the models, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from impasto.shared.database import alembic_config, upgrade_database
from impasto.shared.models import Base
from impasto.shared.settings import Settings, get_settings


@pytest.fixture
def settings(empty_database: str, tmp_path: Path) -> Settings:
    """Settings on an empty database of each kind."""
    return get_settings(data_dir=tmp_path, database_url=empty_database)


def schema_differences(settings: Settings) -> list[object]:
    """What autogenerate would write to bring the migrated database to the models: nothing, if they agree."""
    engine = create_engine(settings.resolved_database_url())
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    return differences


def test_migrations_build_the_schema_the_models_describe(settings: Settings) -> None:
    """Every column, index and constraint of the models is made by a migration, and nothing else."""
    upgrade_database(settings)
    assert schema_differences(settings) == []


def test_every_migration_downgrades_and_upgrades_again(settings: Settings) -> None:
    """base -> head -> base -> head leaves the same schema."""
    config = alembic_config(settings)
    command.upgrade(config, "head")
    command.downgrade(config, "base")
    command.upgrade(config, "head")
    assert schema_differences(settings) == []
