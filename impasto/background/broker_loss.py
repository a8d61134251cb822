"""Noticing that the broker lost its messages (a Redis FLUSHDB, or a restart without persistence), so
the reconciler can re-send every queued job at once instead of after requeue_after_s.

The reconciler keeps a sentinel key in the broker's own Redis database holding the server's run_id
(INFO server; it changes on every restart). A flush removes the key, a restart changes the run_id:
either way the next look finds the sentinel gone or different. The look is one SET ... GET, atomic,
so of several reconcilers exactly one sees each loss and re-sends.

RabbitMQ keeps durable queues and persistent messages across restarts, and the embedded filesystem
broker keeps its folder: neither forgets by itself, and there the requeue_after_s timeout stays the
only net (deploy/README.md).
"""

from __future__ import annotations

import logging

import redis

from impasto.shared.settings import Settings

log = logging.getLogger(__name__)

SENTINEL_KEY = "impasto:broker-sentinel"
TIMEOUT_S = 2.0  # a pass must not hang on a broker that is down; the next pass looks again


class BrokerSentinel:
    """A marker in the broker's Redis whose absence (or another run_id) means its messages are gone."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def lost_since_last_look(self) -> bool:
        """True when the broker was flushed or restarted since the sentinel was last set (or it never was: the first
        look counts as a loss, one harmless duplicate a queued job); plants the sentinel for the next look."""
        run_id = self.client.info("server")["run_id"]
        previous = self.client.set(SENTINEL_KEY, run_id, get=True)  # the old value, bytes, or None
        if isinstance(previous, bytes) and previous.decode() == run_id:
            return False
        log.warning("the broker lost its messages (%s)", "restarted" if previous else "sentinel gone: flushed")
        return True

    def forget(self) -> None:
        """Remove the sentinel, so the next look reports the loss again (after a failed re-send)."""
        self.client.delete(SENTINEL_KEY)

    def close(self) -> None:
        """Release the connection pool."""
        self.client.close()


def broker_sentinel(settings: Settings) -> BrokerSentinel | None:
    """A sentinel for a Redis broker; None for brokers that do not forget on their own (AMQP, filesystem)."""
    url = settings.resolved_broker_url()
    if not url.startswith(("redis://", "rediss://")):
        return None
    return BrokerSentinel(redis.Redis.from_url(url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S))
