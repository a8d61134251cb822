"""`impasto up`: the API and one worker on one machine, with SQLite, local files, and the
embedded filesystem broker, as child processes running the same code as production."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

from impasto import Client
from impasto.cli.embedded_memory import cpu_worker_memory, machine_memory_bytes
from impasto.cli.serve import check_port_free, gunicorn_command
from impasto.shared.database import upgrade_database
from impasto.shared.local_key import ensure_local_key, issue_web_token, make_private, web_token_path
from impasto.shared.settings import get_settings
from impasto.worker.gpus import detect_gpus

CHILD_UMASK = 0o077  # what the API and worker write (database journals, images, messages) is owner-only


class EmbeddedStack:
    """Starts and stops the API (gunicorn) and one worker as child processes."""

    def __init__(self, data_dir: Path, port: int, env: dict[str, str] | None = None, quiet: bool = False) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.env = {**os.environ, **(env or {}), "IMPASTO_DATA_DIR": str(self.data_dir), "IMPASTO_URL": self.url}
        self.quiet = quiet
        self.processes: list[subprocess.Popen[bytes]] = []
        # The key clients of this stack send; set by start() (also saved in data_dir/local-api-key).
        self.api_key: str | None = None
        self.settings = get_settings(data_dir=self.data_dir, database_url=self.env.get("IMPASTO_DATABASE_URL"))
        if self.settings.device == "cpu" or (self.settings.device == "auto" and not detect_gpus()):
            self.env.update(cpu_worker_memory(self.env, self.settings, machine_memory_bytes()))

    def start(self, ready_timeout: float = 60.0) -> EmbeddedStack:
        """Migrate the database, make or reuse the local API key, start the processes, wait until ready."""
        # Owner-only: the folder holds the key, the database and every image. Files made before
        # this version (or by this process, whose umask is the user's) are tightened here; the
        # children create theirs owner-only (umask 077).
        check_port_free("127.0.0.1", self.port)  # before any child starts
        make_private(self.data_dir)
        upgrade_database(self.settings)
        self.api_key = ensure_local_key(self.settings)
        make_private(self.data_dir)
        self._spawn("worker", [sys.executable, "-m", "impasto.cli", "worker", "--name", "embedded@localhost"])
        self._spawn("reconcile", [sys.executable, "-m", "impasto.cli", "reconcile"])
        self._spawn("webhooks", [sys.executable, "-m", "impasto.cli", "webhook-worker", "--concurrency", "2"])
        self._spawn("api", gunicorn_command("127.0.0.1", self.port, 1))
        client = Client(self.url, api_key="")
        deadline = time.monotonic() + ready_timeout
        while not client.ready():
            self.check_alive()
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the API did not become ready on {self.url} within {ready_timeout} s")
            time.sleep(0.2)
        return self

    def _spawn(self, name: str, command: list[str]) -> None:
        """Start a child; with quiet=True its output goes to data_dir/logs/NAME.log."""
        if not self.quiet:
            self.processes.append(subprocess.Popen(command, env=self.env, umask=CHILD_UMASK))
            return
        log_dir = self.data_dir / "logs"
        log_dir.mkdir(mode=0o700, exist_ok=True)
        # Created 0600 whatever this process's umask; the child keeps its own descriptor.
        with open(os.open(log_dir / f"{name}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as log:
            self.processes.append(
                subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT, umask=CHILD_UMASK)
            )

    def login_url(self) -> str:
        """A new one-time link that logs the web page in with the local key (an older unused one stops working)."""
        return f"{self.url}/#token={issue_web_token(self.settings)}"

    def login_url_used(self) -> bool:
        """True once the page has consumed the last login link."""
        return not web_token_path(self.settings).exists()

    def check_alive(self) -> None:
        """Raise if a child process has exited."""
        for process in self.processes:
            if process.poll() is not None:
                self.stop()
                raise RuntimeError(f"{process.args!r} exited with code {process.returncode}; see {self.data_dir}/logs")

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM both children, then SIGKILL whatever is left after `timeout`."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()

    def __enter__(self) -> EmbeddedStack:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


@click.command()
@click.option("--port", default=8000, show_default=True)
@click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None, help="default: IMPASTO_DATA_DIR"
)
def up(port: int, data_dir: Path | None) -> None:
    """Run the API and one worker on this machine until Ctrl-C."""
    stack = EmbeddedStack(data_dir or get_settings().data_dir, port)
    stack.start()
    click.echo(f"impasto is up at {stack.url} (data in {stack.data_dir}); Ctrl-C stops it")
    click.echo(f"its API key is in {stack.settings.local_api_key_path()}; `impasto submit` finds it there")
    click.echo(f"open the web page, logged in, with this one-time link:\n    {stack.login_url()}")
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        while True:
            stack.check_alive()
            if stack.login_url_used():  # one link per browser tab: the next one is ready when needed
                click.echo(f"the login link was used; a new one-time link:\n    {stack.login_url()}")
            time.sleep(1)
    except KeyboardInterrupt:
        click.echo("stopping")
    finally:
        stack.stop()
