"""The `impasto` command. Every subcommand lives in a module of this package and loads lazily by
module name, so the API's install needs no torch and `impasto --help` imports neither the API
nor the worker."""

from __future__ import annotations

import importlib

import click

from impasto.shared.database import upgrade_database
from impasto.shared.settings import get_settings

# command name -> "module:attribute" of its click command
LAZY_COMMANDS = {
    "stylize": "impasto.cli.stylize:stylize",
    "worker": "impasto.cli.worker:worker",
    "api": "impasto.cli.serve:api",
    "up": "impasto.cli.stack:up",
    "submit": "impasto.cli.client_commands:submit",
    "status": "impasto.cli.client_commands:status",
    "cancel": "impasto.cli.client_commands:cancel",
    "demo": "impasto.cli.demo:demo",
    "reconcile": "impasto.cli.reconcile:reconcile",
    "flower": "impasto.cli.flower:flower",
    "keys": "impasto.cli.keys:keys",
    "webhook-worker": "impasto.cli.webhooks:webhook_worker",
    "webhook-secret": "impasto.cli.webhooks:webhook_secret",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported only when run (click's documented pattern)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Built-in and lazy command names, sorted."""
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Import a lazy command on demand."""
        if cmd_name in LAZY_COMMANDS:
            module_name, attribute = LAZY_COMMANDS[cmd_name].split(":")
            try:
                module = importlib.import_module(module_name)
            except ImportError as exc:
                raise click.ClickException(
                    f"`impasto {cmd_name}` needs the worker extra: pip install 'impasto[worker]' ({exc})"
                ) from exc
            command: click.Command = getattr(module, attribute)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup)
def main() -> None:
    """impasto: neural style transfer as a job queue."""


@main.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply all migrations to IMPASTO_DATABASE_URL (default: the embedded SQLite file)."""
    settings = get_settings()
    upgrade_database(settings)
    click.echo(f"database at head: {settings.resolved_database_url()}")
