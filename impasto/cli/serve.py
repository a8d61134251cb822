"""`impasto api`: the HTTP API under gunicorn, and the gunicorn command line `impasto up` reuses."""

from __future__ import annotations

import errno
import os
import socket
import sys
import tempfile

import click

# Threads per gunicorn process: concurrent requests, long-lived event streams included.
API_THREADS = 64


@click.command()
@click.option("--port", default=8000, show_default=True, help="port to listen on")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to bind")
@click.option("--workers", default=2, show_default=True, help="gunicorn worker processes")
def api(port: int, host: str, workers: int) -> None:
    """Serve the HTTP API with gunicorn (production settings)."""
    # exec, not a child: signals from a supervisor (SIGTERM on scale-down) reach gunicorn's
    # arbiter directly, and no orphaned gunicorn outlives a killed `impasto api`.
    check_port_free(host, port)
    command = gunicorn_command(host, port, workers)
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # /metrics sums request latency over all gunicorn processes through these files
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="impasto-metrics-")
    os.execv(command[0], command)


def check_port_free(host: str, port: int) -> None:
    """A click error if something listens on host:port already.

    gunicorn runs with --reuse-port (each worker its own listening socket, so the kernel spreads
    connections evenly; one shared socket let one worker take 14 of wrk's 16 keep-alive connections).
    With SO_REUSEPORT a second server of the same user would share the port silently, half the
    clients reaching each; a plain bind first refuses to start beside one instead.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed server's TIME_WAIT is no user
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise click.ClickException(f"{host}:{port} is in use; stop what listens there or pick --port") from exc
            raise


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
        "--reuse-port",  # one listening socket per worker: see check_port_free
    ]  # fmt: skip
