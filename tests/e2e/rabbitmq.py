"""A RabbitMQ virtual host of a test's own on the local server (127.0.0.1:5672, guest), so tests running
at once on one machine never share queues; deleted, with its queues, afterwards."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import uuid
from collections.abc import Iterator

import pytest
from kombu import Connection

RABBITMQ = "amqp://guest:guest@127.0.0.1:5672"


def rabbitmqctl(*args: str) -> None:
    """Run rabbitmqctl (it needs the node's Erlang cookie: root or the rabbitmq user)."""
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


@contextlib.contextmanager
def rabbitmq_vhost() -> Iterator[str]:
    """The amqp:// URL of a fresh vhost; skips the test where no RabbitMQ server can be managed here."""
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl not installed")
    try:
        with Connection(f"{RABBITMQ}//", connect_timeout=2) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as exc:  # any failure to reach the server means there is none to test against
        pytest.skip(f"RabbitMQ not reachable at {RABBITMQ}: {exc}")
    vhost = f"impasto_test_{uuid.uuid4().hex[:12]}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"{RABBITMQ}/{vhost}"
    finally:
        rabbitmqctl("delete_vhost", vhost)
