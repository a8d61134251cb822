"""The API's /metrics: queue depth per queue (broker) and jobs by status (SQL), read at
scrape time by a custom collector and rendered in Prometheus's text format."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import redis
from kombu import Connection
from kombu.exceptions import ChannelError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from impasto.shared.jobs import as_utc
from impasto.shared.models import Job, utcnow
from impasto.shared.settings import Settings
from impasto.shared.status import JobStatus
from impasto.shared.task_names import TRANSFER_QUEUES, WEBHOOK_QUEUE

log = logging.getLogger(__name__)

# Every queue the API enqueues on: the transfer size classes and webhook deliveries.
METERED_QUEUES: tuple[str, ...] = (*TRANSFER_QUEUES, WEBHOOK_QUEUE)

# A scrape must answer before Prometheus's own timeout (10 s by default), even with Redis down.
BROKER_TIMEOUT_S = 1.0


def redis_queue_depths(broker_url: str, queues: tuple[str, ...] = METERED_QUEUES) -> dict[str, int]:
    """LLEN of each queue's Redis list: messages waiting, not those prefetched or running."""
    client = redis.Redis.from_url(broker_url, socket_connect_timeout=BROKER_TIMEOUT_S, socket_timeout=BROKER_TIMEOUT_S)
    try:
        with client.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.llen(queue)
            lengths = pipe.execute()
    finally:
        client.close()
    return {queue: int(length) for queue, length in zip(queues, lengths, strict=True)}


def amqp_queue_depths(broker_url: str, queues: tuple[str, ...] = METERED_QUEUES) -> dict[str, int]:
    """Ready messages of each RabbitMQ queue (a passive declare: read, never created); 0 for one not declared yet."""
    depths = {}
    with Connection(broker_url, connect_timeout=BROKER_TIMEOUT_S) as connection:
        connection.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_S)
        for queue in queues:
            channel = connection.channel()  # a failed passive declare closes its channel
            try:
                depths[queue] = int(channel.queue_declare(queue=queue, passive=True).message_count)
            except ChannelError:  # NOT_FOUND: no worker or sender has declared it yet
                depths[queue] = 0
            finally:
                with contextlib.suppress(ChannelError, OSError):
                    channel.close()
    return depths


def folder_queue_depths(folder: Path, queues: tuple[str, ...] = METERED_QUEUES) -> dict[str, int]:
    """Messages waiting in the embedded broker's folder (kombu names them <time>_<uuid>.<queue>.msg)."""
    names = [p.name.partition(".")[2] for p in folder.glob("*.msg")] if folder.is_dir() else []
    return {queue: names.count(f"{queue}.msg") for queue in queues}


def queue_depths(settings: Settings) -> dict[str, int] | None:
    """Waiting messages per queue (transfer classes and webhooks); None for a broker this cannot read."""
    url = settings.resolved_broker_url()
    if url.startswith(("redis://", "rediss://")):
        return redis_queue_depths(url)
    if settings.uses_amqp_broker():
        return amqp_queue_depths(url)
    if settings.uses_embedded_broker():
        return folder_queue_depths(settings.broker_folder())
    return None


def jobs_by_status(session: Session) -> dict[str, int]:
    """How many jobs are in each status, every status present (0 when none)."""
    counts = {status.value: 0 for status in JobStatus}
    for status, count in session.execute(select(Job.status, func.count()).group_by(Job.status)).all():
        counts[status] = int(count)
    return counts


def oldest_queued_seconds(session: Session) -> float:
    """Age of the oldest queued job (0 when none): the wait a new worker would start to shorten."""
    query = select(func.min(Job.created_at)).where(Job.status == JobStatus.QUEUED.value)
    oldest = as_utc(session.execute(query).scalar())
    return max(0.0, (utcnow() - oldest).total_seconds()) if oldest is not None else 0.0


class ApiMetricsCollector:
    """Reads the broker and SQL at each scrape; an unreachable one shows as *_up 0, not an error."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self.settings = settings
        self.sessions = sessions

    def collect(self) -> Iterator[Metric]:
        """The queue, job and reachability gauges."""
        yield from self._broker_metrics()
        yield from self._database_metrics()

    def _broker_metrics(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("impasto_broker_up", "1 if the broker answered this scrape's queue-depth reads")
        try:
            depths = queue_depths(self.settings)
        except Exception as exc:  # any broker failure means "not read this time", whatever its type
            log.warning("metrics: broker unreadable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        if depths is not None:
            depth = GaugeMetricFamily(
                "impasto_queue_depth",
                "messages waiting in each queue: transfer size classes and webhooks (Redis LLEN, RabbitMQ "
                "ready count; prefetched and running ones not counted)",
                labels=["queue"],
            )
            for queue, length in depths.items():
                depth.add_metric([queue], length)
            yield depth

    def _database_metrics(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("impasto_database_up", "1 if SQL answered this scrape's job counts")
        try:
            with self.sessions() as session:
                counts = jobs_by_status(session)
                oldest = oldest_queued_seconds(session)
        except Exception as exc:  # as above: a scrape reports the outage instead of failing
            log.warning("metrics: database unreadable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        jobs = GaugeMetricFamily("impasto_jobs", "jobs in each status (SQL)", labels=["status"])
        for status, count in counts.items():
            jobs.add_metric([status], count)
        yield jobs
        yield GaugeMetricFamily(
            "impasto_oldest_queued_job_seconds", "age of the oldest queued job, 0 when none", value=oldest
        )


def render_api_metrics(
    settings: Settings, sessions: sessionmaker[Session], registry: CollectorRegistry | None = None
) -> tuple[bytes, str]:
    """The /metrics body and its content type; `registry` may already hold the API's own metrics."""
    registry = registry if registry is not None else CollectorRegistry()
    registry.register(ApiMetricsCollector(settings, sessions))
    return generate_latest(registry), CONTENT_TYPE_LATEST
