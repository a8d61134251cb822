"""The `impasto` command. Subcommands load lazily by module name, so the API's install needs
no torch and this package never imports api or worker (it names them, as tasks are named)."""

from __future__ import annotations

import importlib
import os
import sys
import tempfile

import click

from impasto.shared.database import upgrade_database
from impasto.shared.settings import get_settings

# Threads per gunicorn process: concurrent requests, long-lived event streams included.
API_THREADS = 64

# command name -> "module:attribute" of its click command
LAZY_COMMANDS = {
    "stylize": "impasto.cli.stylize:stylize",
    "worker": "impasto.cli.worker:worker",
    "up": "impasto.cli.stack:up",
    "submit": "impasto.cli.client_commands:submit",
    "status": "impasto.cli.client_commands:status",
    "cancel": "impasto.cli.client_commands:cancel",
    "demo": "impasto.cli.demo:demo",
    "reconcile": "impasto.background.reconcile:reconcile",
    "flower": "impasto.cli.flower:flower",
    "keys": "impasto.cli.keys:keys",
    "webhook-worker": "impasto.background.webhook_delivery:webhook_worker",
    "webhook-secret": "impasto.shared.webhook_signing:webhook_secret",
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


@main.command()
@click.option("--port", default=8000, show_default=True, help="port to listen on")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to bind")
@click.option("--workers", default=2, show_default=True, help="gunicorn worker processes")
def api(port: int, host: str, workers: int) -> None:
    """Serve the HTTP API with gunicorn (production settings)."""
    # exec, not a child: signals from a supervisor (SIGTERM on scale-down) reach gunicorn's
    # arbiter directly, and no orphaned gunicorn outlives a killed `impasto api`.
    command = gunicorn_command(host, port, workers)
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # /metrics sums request latency over all gunicorn processes through these files
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="impasto-metrics-")
    os.execv(command[0], command)


def gunicorn_command(host: str, port: int, workers: int) -> list[str]:
    """The gunicorn command line that serves impasto.api.wsgi:app."""
    return [
        sys.executable, "-m", "gunicorn", "impasto.api.wsgi:app",
        "--bind", f"{host}:{port}",
        "--workers", str(workers),
        # gthread: most requests are short DB reads and file streams, but an event stream
        # (GET /v1/jobs/{id}/events) or a POST held by `Prefer: wait` keeps its thread for
        # minutes, so each process gets many threads (an idle one costs a stack, ~100 KB
        # resident); a stream mostly sleeps in a blocking XREAD or between SQL polls.
        # gevent would hold more, but it monkey-patches psycopg/redis/kombu and adds a
        # dependency; gthread needs none. The keep-alive timeout does not cut streams: the
        # heartbeat comment every sse_heartbeat_s keeps them writing.
        "--worker-class", "gthread", "--threads", str(API_THREADS),
        "--graceful-timeout", "20", "--access-logfile", "-",
    ]  # fmt: skip
