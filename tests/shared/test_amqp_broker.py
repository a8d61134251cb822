"""RabbitMQ as the broker, against the local server: queue types as declared, and queue depth for /metrics."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kombu.exceptions import OperationalError

from impasto.api.queue_metrics import queue_depths
from impasto.shared.celery_app import make_celery
from impasto.shared.enqueue import send_transfer
from impasto.shared.settings import Settings, get_settings
from impasto.shared.task_names import LARGE_QUEUE, SMALL_QUEUE, WEBHOOK_QUEUE
from tests.e2e.rabbitmq import rabbitmq_vhost


@pytest.fixture
def amqp_settings(tmp_path: Path) -> Iterator[Settings]:
    """Settings with a fresh RabbitMQ vhost as the broker."""
    with rabbitmq_vhost() as url:
        yield get_settings(data_dir=tmp_path, broker_url=url)


def queue_types(vhost: str) -> dict[str, str]:
    """name -> type of each queue in the vhost, as the server lists them."""
    listed = subprocess.run(
        ["rabbitmqctl", "list_queues", "-q", "--no-table-headers", "-p", vhost, "name", "type"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    return dict(line.split("\t") for line in listed.splitlines() if "\t" in line)


def test_transfer_queues_are_quorum_and_counted(amqp_settings: Settings) -> None:
    """Sent jobs land in a durable quorum queue; depths are ready messages (webhooks too), 0 if undeclared."""
    assert queue_depths(amqp_settings) == {SMALL_QUEUE: 0, LARGE_QUEUE: 0, WEBHOOK_QUEUE: 0}
    celery = make_celery(amqp_settings)
    try:
        for job_id in ("a", "b", "c"):
            assert send_transfer(celery, job_id, SMALL_QUEUE)
        assert send_transfer(celery, "d", LARGE_QUEUE)
        with celery.connection_for_write() as connection:  # the webhook queue, as a webhook enqueue declares it
            celery.amqp.queues[WEBHOOK_QUEUE](connection.default_channel).declare()
    finally:
        celery.close()
    deadline = time.monotonic() + 10
    while (depths := queue_depths(amqp_settings)) != {SMALL_QUEUE: 3, LARGE_QUEUE: 1, WEBHOOK_QUEUE: 0}:
        assert time.monotonic() < deadline, depths
        time.sleep(0.2)
    vhost = amqp_settings.resolved_broker_url().rsplit("/", 1)[1]
    assert queue_types(vhost) == {SMALL_QUEUE: "quorum", LARGE_QUEUE: "quorum", WEBHOOK_QUEUE: "classic"}


def test_an_unreachable_rabbitmq_is_an_error_for_the_collector(tmp_path: Path) -> None:
    """A RabbitMQ that does not answer raises (the collector turns that into impasto_broker_up 0), quickly."""
    settings = get_settings(data_dir=tmp_path, broker_url="amqp://guest:guest@127.0.0.1:1//")
    started = time.monotonic()
    with pytest.raises(OperationalError):
        queue_depths(settings)
    assert time.monotonic() - started < 10
