"""`impasto keys create | list | revoke`: manage API keys in the configured database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
from sqlalchemy import inspect
from sqlalchemy.orm import Session

from impasto.shared.api_keys import KEY_PREFIX, create_key, list_keys, revoke_key
from impasto.shared.database import make_engine, make_sessionmaker
from impasto.shared.jobs import as_utc
from impasto.shared.settings import get_settings


@contextmanager
def key_session() -> Iterator[Session]:
    """A session on IMPASTO_DATABASE_URL; a clear error when the schema has no keys table yet."""
    settings = get_settings()
    engine = make_engine(settings)
    try:
        if not inspect(engine).has_table("api_keys"):
            raise click.ClickException(
                f"{settings.resolved_database_url()} has no api_keys table; run `impasto db upgrade` first"
            )
        with make_sessionmaker(engine)() as session:
            yield session
    finally:
        engine.dispose()


@click.group()
def keys() -> None:
    """API keys: create (shown once), list, revoke."""


@keys.command("create")
@click.option("--name", required=True, help="who or what the key is for (shown by `keys list`)")
def create(name: str) -> None:
    """Create a key and print it once; only its hash is stored."""
    with key_session() as session:
        record, key = create_key(session, name)
    click.echo(f"created key {record.id} ({name}); store it now, it is not shown again", err=True)
    click.echo(key)  # alone on stdout, so KEY=$(impasto keys create --name ci) works


@keys.command("list")
def list_command() -> None:
    """Every key: id, name, when made, and whether revoked (never the key itself)."""
    with key_session() as session:
        records = list_keys(session)
    if not records:
        click.echo("no API keys; make one with `impasto keys create --name NAME`")
        return
    click.echo(f"{'ID':<{len(KEY_PREFIX) + 14}} {'CREATED (UTC)':<20} {'STATE':<28} NAME")
    for record in records:
        revoked_at = as_utc(record.revoked_at)
        state = f"revoked {revoked_at:%Y-%m-%d %H:%M:%S}" if revoked_at else "active"
        click.echo(
            f"{KEY_PREFIX}{record.id:<14} {as_utc(record.created_at):%Y-%m-%d %H:%M:%S}  {state:<28} {record.name}"
        )


@keys.command("revoke")
@click.argument("reference", metavar="KEY_ID_OR_PREFIX")
def revoke(reference: str) -> None:
    """Revoke a key by its id (or a unique prefix of it, or imp_<id>); its requests get 401."""
    with key_session() as session:
        try:
            record, revoked_now = revoke_key(session, reference)
        except LookupError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"{'revoked' if revoked_now else 'already revoked:'} key {record.id} ({record.name})")
