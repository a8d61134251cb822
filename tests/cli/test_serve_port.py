"""`impasto api` and `impasto up` refuse a port something listens on (gunicorn's --reuse-port would share it)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from impasto.cli.serve import gunicorn_command
from impasto.cli.stack import EmbeddedStack


def test_the_api_refuses_a_port_in_use_instead_of_sharing_it(tmp_path: Path) -> None:
    """A listener with SO_REUSEPORT, as a running gunicorn worker has: the API says so and exits, the
    listener keeps its port; `impasto up` says the same before it starts any child."""
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        try:  # a process of its own: without the check, gunicorn would start and share the port
            done = subprocess.run(
                [sys.executable, "-m", "impasto.cli", "api", "--port", str(port)],
                capture_output=True,
                text=True,
                timeout=20,
            )
        except subprocess.TimeoutExpired as exc:
            raise AssertionError("impasto api kept running on a port another server listens on") from exc
        assert done.returncode == 1 and f"127.0.0.1:{port} is in use" in done.stderr
        stack = EmbeddedStack(tmp_path / "data", port, quiet=True)
        try:
            stack.start()
        except Exception as exc:  # click's ClickException
            assert f"127.0.0.1:{port} is in use" in str(exc)
        else:
            stack.stop()
            raise AssertionError("impasto up started beside another listener")
        assert stack.processes == []


def test_gunicorn_runs_one_listening_socket_per_worker() -> None:
    """--reuse-port: the kernel spreads connections over the workers (bench/RESULTS.md, issue 17)."""
    assert "--reuse-port" in gunicorn_command("127.0.0.1", 8000, 2)
    assert subprocess.run([sys.executable, "-m", "gunicorn", "--help"], capture_output=True, text=True).stdout.count(
        "--reuse-port"
    )
