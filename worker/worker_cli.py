"""`impasto worker`: a Celery worker process for transfer jobs (solo pool, one job at a time)."""

from __future__ import annotations

import socket

import click

from shared.task_names import TRANSFER_QUEUE


@click.command()
@click.option("--name", default=None, help="Celery node name (default: cpu@<host>)")
@click.option("--queues", default=TRANSFER_QUEUE, show_default=True, help="comma-separated queues to consume")
@click.option("--loglevel", default="INFO", show_default=True)
def worker(name: str | None, queues: str, loglevel: str) -> None:
    """Run one worker process; it claims jobs in SQL and runs them on IMPASTO_DEVICE."""
    from worker.celery_worker import app  # built here, in the process that runs it

    argv = [
        "worker",
        "--pool=solo",
        "--concurrency=1",
        f"--hostname={name or 'cpu@' + socket.gethostname()}",
        f"--queues={queues}",
        f"--loglevel={loglevel}",
        # Gossip and mingle exchange broadcasts between workers; jobs need none of it, and the
        # embedded filesystem broker has no fanout for it.
        "--without-gossip",
        "--without-mingle",
    ]
    app.worker_main(argv)
