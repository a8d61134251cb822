"""`impasto worker`: one Celery worker process (one job at a time, on a thread of its own, so the
process keeps answering heartbeats and `celery inspect`), or with --gpus a supervising parent that
runs one such process per GPU. Nothing here imports torch: the parent never initialises CUDA, and a
child imports torch only after its environment pins its GPU."""

from __future__ import annotations

import logging
import os
import socket
import sys

import click

from impasto.shared.settings import get_settings
from impasto.shared.size_classes import cpu_queues, queues_for_capacity

log = logging.getLogger(__name__)


@click.command()
@click.option("--name", default=None, help="Celery node name of the single process (default: cpu-<pid>@<host>)")
@click.option(
    "--queues", default=None, help="comma-separated queues to consume (default: the size classes this worker holds)"
)
@click.option(
    "--gpus",
    default=None,
    metavar="all|cpu|0,1,...",
    help="supervise one worker process per GPU (all: every GPU nvidia-smi lists; cpu: one CPU worker); "
    "without it, one worker process runs in the foreground",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=None,
    help="largest job (output pixels) this worker takes; default: from each GPU's memory, or every class",
)
@click.option("--loglevel", default="INFO", show_default=True)
def worker(name: str | None, queues: str | None, gpus: str | None, max_pixels: int | None, loglevel: str) -> None:
    """Run worker process(es); each claims jobs in SQL and runs them on its device."""
    if gpus is None:
        run_one_worker(name, queues, max_pixels, loglevel)
        return
    if name is not None:
        raise click.UsageError("--name names the single process; with --gpus each child is gpu<N>-<pid>@<host>")
    sys.exit(supervise(gpus, queues, max_pixels, loglevel))


def default_node_name(kind: str, pid: int, host: str) -> str:
    """A node name unique on its machine: two workers started alike (`--gpus cpu` twice) differ by pid."""
    return f"{kind}-{pid}@{host}"


def run_one_worker(name: str | None, queues: str | None, max_pixels: int | None, loglevel: str) -> None:
    """One Celery worker in this process, serving its metrics when a port is set."""
    settings = get_settings()
    from impasto.worker.celery_worker import app  # built here, in the process that runs it (imports torch)
    from impasto.worker.context import resolve_device
    from impasto.worker.metrics import serve_worker_metrics

    if queues is None and max_pixels is None and resolve_device(settings.device) == "cpu":
        queues = ",".join(cpu_queues(settings))  # a GPU's classes come from its memory (--gpus) or --max-pixels

    serve_worker_metrics(settings.worker_metrics_port, settings.worker_metrics_host)
    argv = [
        "worker",
        "--pool=threads",  # one job thread; the main thread keeps consuming control messages
        "--concurrency=1",
        f"--hostname={name or default_node_name('cpu', os.getpid(), socket.gethostname())}",
        f"--queues={queues or ','.join(queues_for_capacity(max_pixels, settings))}",
        f"--loglevel={loglevel}",
        # Gossip and mingle exchange broadcasts between workers; jobs need none of it, and the
        # embedded filesystem broker has no fanout for it.
        "--without-gossip",
        "--without-mingle",
    ]
    app.worker_main(argv)


def supervise(gpus: str, queues: str | None, max_pixels: int | None, loglevel: str) -> int:
    """Start one child per chosen GPU (or one CPU child) and supervise them; the exit code."""
    from impasto.worker.children import child_specs
    from impasto.worker.gpus import choose_gpus, detect_gpus
    from impasto.worker.supervisor import Supervisor, run_supervisor

    logging.basicConfig(level=loglevel.upper(), format="%(asctime)s %(levelname)s supervisor: %(message)s")
    settings = get_settings()
    detected = [] if gpus.strip().lower() == "cpu" else detect_gpus()
    try:
        chosen = choose_gpus(gpus, detected)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--gpus") from exc
    if not chosen and gpus.strip().lower() != "cpu":
        log.warning("no GPU found (nvidia-smi lists none); running one CPU worker")
    elif chosen and not detected:
        log.warning("nvidia-smi lists no GPU; taking --gpus %s on trust (memory unknown)", gpus)
    host = socket.gethostname()
    specs = child_specs(
        chosen, settings, dict(os.environ), host, os.getpid(), max_pixels=max_pixels, queues=queues, loglevel=loglevel
    )
    return run_supervisor(Supervisor(specs, settings.shutdown_timeout_s))
