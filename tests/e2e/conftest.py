"""Real processes for end-to-end tests: gunicorn serving the API and `impasto worker`."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
# API key per running stack's base URL, so helpers can authenticate with just the URL.
API_KEYS: dict[str, str] = {}


def auth(url: str) -> dict[str, str]:
    """The Authorization header for the stack whose URL `url` starts with."""
    for base, key in API_KEYS.items():
        if url.startswith(base):
            return {"Authorization": f"Bearer {key}"}
    raise KeyError(f"no API key registered for {url}")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Processes:
    """Child processes sharing one environment; stopped (SIGTERM, then SIGKILL) at the end."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.children: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """Start `impasto ARGS` as child `name`, logging to log_dir/name.log."""
        with open(self.log_dir / f"{name}.log", "ab") as log:  # the child keeps its own descriptor
            process = subprocess.Popen(
                [sys.executable, "-m", "impasto.cli", *args],
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.children[name] = process
        return process

    def log(self, name: str) -> str:
        """What child `name` has printed so far."""
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        """Terminate every child."""
        for process in self.children.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.children.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_ready(url: str, timeout: float = 60) -> None:
    """Wait until GET url/readyz answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready")


@pytest.fixture
def production_stack(tmp_path: Path, postgres_url: str, redis_url: str) -> Iterator[tuple[str, Processes]]:
    """Redis broker, PostgreSQL, local storage; the API under gunicorn and one worker, both real processes."""
    with start_production_stack(tmp_path, postgres_url, redis_url) as stack:
        yield stack


@contextlib.contextmanager
def start_production_stack(
    tmp_path: Path, postgres_url: str, redis_url: str, with_worker: bool = True, **settings: str
) -> Iterator[tuple[str, Processes]]:
    """The production_stack's processes (the API alone without `with_worker`); `settings` are extra
    IMPASTO_* variables (name without the prefix)."""
    port = free_port()
    env = {
        **os.environ,
        "IMPASTO_DATA_DIR": str(tmp_path / "data"),
        "IMPASTO_DATABASE_URL": postgres_url,
        "IMPASTO_BROKER_URL": redis_url,
        "IMPASTO_STORAGE_URL": f"file://{tmp_path / 'storage'}",
        "IMPASTO_PROGRESS_INTERVAL_S": "0.2",
        "IMPASTO_CANCEL_POLL_S": "0.2",
        "IMPASTO_DEVICE": "cpu",
        **{f"IMPASTO_{name.upper()}": value for name, value in settings.items()},
    }
    processes = Processes(env, tmp_path)
    subprocess.run(
        [sys.executable, "-m", "impasto.cli", "db", "upgrade"], env=env, cwd=ROOT, check=True, capture_output=True
    )
    key = subprocess.run(
        [sys.executable, "-m", "impasto.cli", "keys", "create", "--name", "e2e"],
        env=env, cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    if with_worker:
        processes.start("worker", "worker", "--name", "e2e@localhost")
    processes.start("api", "api", "--port", str(port), "--workers", "1")
    url = f"http://127.0.0.1:{port}"
    API_KEYS[url] = key
    try:
        wait_ready(url)
        yield url, processes
    finally:
        processes.stop_all()
        API_KEYS.pop(url, None)
