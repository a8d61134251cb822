"""`impasto webhook-worker` (runs impasto/background/webhook_delivery.py's task on the `webhooks`
queue in a thread pool) and `impasto webhook-secret` (prints a signing secret)."""

from __future__ import annotations

import secrets
import socket
import sys

import click
from pydantic import ValidationError

import impasto.background.webhook_delivery  # noqa: F401  # registers the delivery task with Celery
from impasto.shared.celery_app import make_celery
from impasto.shared.settings import get_settings
from impasto.shared.task_names import WEBHOOK_QUEUE
from impasto.shared.webhook_signing import MIN_KEY_BYTES, NEW_KEY_BYTES, SECRET_PREFIX, secret_for_key


@click.command("webhook-worker")
@click.option("--concurrency", type=int, default=None, help="delivery threads (default: setting)")
@click.option("--loglevel", default="INFO", show_default=True)
def webhook_worker(concurrency: int | None, loglevel: str) -> None:
    """Deliver webhooks from the `webhooks` queue in a thread pool, forever."""
    try:
        settings = get_settings()
    except ValidationError as exc:  # e.g. a webhook secret not in whsec_ form: say so, without a traceback
        raise click.ClickException(str(exc)) from exc
    app = make_celery(settings)
    app.conf.update(worker_pool="threads", worker_prefetch_multiplier=4)
    app.worker_main(
        [
            "worker",
            "--pool=threads",
            f"--concurrency={concurrency or settings.webhook_concurrency}",
            f"--hostname=webhooks@{socket.gethostname()}",
            f"--queues={WEBHOOK_QUEUE}",
            f"--loglevel={loglevel}",
            "--without-gossip",
            "--without-mingle",
        ]
    )


@click.command("webhook-secret")
@click.option(
    "--from-legacy",
    is_flag=True,
    help="read an old (pre-whsec_) secret on stdin and print the whsec_ form of the same key",
)
def webhook_secret(from_legacy: bool) -> None:
    """Print a new webhook signing secret (whsec_<base64 of 32 random bytes>) for IMPASTO_WEBHOOK_SECRET."""
    if not from_legacy:
        click.echo(secret_for_key(secrets.token_bytes(NEW_KEY_BYTES)))
        return
    # Old secrets were used as their UTF-8 bytes; those bytes, base64-encoded, are the same HMAC key.
    old = sys.stdin.read().rstrip("\r\n")
    key = old.encode()
    if old.startswith(SECRET_PREFIX) or len(key) < MIN_KEY_BYTES:
        raise click.ClickException(
            f"expected an old secret of at least {MIN_KEY_BYTES} bytes without the {SECRET_PREFIX} prefix on stdin"
        )
    click.echo(secret_for_key(key))
