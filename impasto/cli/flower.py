"""`impasto flower`: Flower, Celery's monitor, against the configured broker (no worker code needed)."""

from __future__ import annotations

import os
import sys

import click

from impasto.shared.celery_app import make_celery
from impasto.shared.settings import get_settings


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--port", default=5555, show_default=True, help="port to listen on")
@click.option("--address", default="127.0.0.1", show_default=True, help="address to bind")
@click.option(
    "--basic-auth",
    default=None,
    metavar="USER:PASSWORD[,...]",
    help="HTTP basic auth for the pages and the /api (default: IMPASTO_FLOWER_BASIC_AUTH)",
)
@click.argument("flower_options", nargs=-1, type=click.UNPROCESSED)
def flower(port: int, address: str, basic_auth: str | None, flower_options: tuple[str, ...]) -> None:
    """Monitor workers and tasks in a browser; other options go to Flower (e.g. --auth for OAuth).

    Flower's HTTP API answers only with authentication configured (--basic-auth, or
    IMPASTO_FLOWER_BASIC_AUTH), or with FLOWER_UNAUTHENTICATED_API=true (a private network only).
    """
    try:
        import flower as _flower  # noqa: F401  (only to say which extra is missing)
    except ImportError as exc:
        raise click.ClickException("`impasto flower` needs Flower: pip install 'impasto[api]'") from exc
    settings = get_settings()
    if settings.uses_embedded_broker():
        # Flower binds an event queue in the broker; the filesystem transport keeps that binding
        # after Flower exits, and every later event would pile up as a file nobody reads.
        raise click.ClickException("Flower needs a broker server: set IMPASTO_BROKER_URL=redis://... or amqp://...")
    credentials = basic_auth or (settings.flower_basic_auth.get_secret_value() if settings.flower_basic_auth else None)
    if credentials:
        if not all(":" in pair for pair in credentials.split(",")):
            raise click.BadParameter("takes user:password pairs, comma-separated", param_hint="--basic-auth")
        # Flower reads FLOWER_* variables; the environment keeps the password out of `ps` output.
        os.environ["FLOWER_BASIC_AUTH"] = credentials
    app = make_celery(settings)
    sys.exit(app.start(["flower", f"--port={port}", f"--address={address}", *flower_options]) or 0)
