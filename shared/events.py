"""Live job events on a per-job Redis stream: status, progress and snapshot.

A stream rather than plain pub/sub, because its entry ids increase: a reader that reconnects
with Last-Event-ID continues after the last entry it saw, losing nothing. Events are a live
view only; SQL stays the truth, and a reader without Redis (the embedded set-up) polls SQL.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import redis

from shared.settings import Settings

log = logging.getLogger(__name__)

STREAM_MAXLEN = 2000  # entries kept per job; progress is throttled, so this spans a whole job
STREAM_TTL_S = 7 * 24 * 3600  # a finished job's stream expires with its images


def stream_key(job_id: str) -> str:
    """The Redis key of a job's event stream."""
    return f"impasto:events:{job_id}"


class EventPublisher:
    """Appends events to job streams; does nothing without Redis, and never fails a job."""

    def __init__(self, client: redis.Redis | None) -> None:
        self.client = client

    def publish(self, job_id: str, event: str, data: dict[str, Any]) -> None:
        """XADD one event; a Redis error is logged and dropped."""
        if self.client is None:
            return
        key = stream_key(job_id)
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.xadd(key, {"event": event, "data": json.dumps(data)}, maxlen=STREAM_MAXLEN, approximate=True)
            pipe.expire(key, STREAM_TTL_S)
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("job %s: %s event not published (%s)", job_id, event, exc)

    def close(self) -> None:
        """Release the connection pool."""
        if self.client is not None:
            self.client.close()


def redis_url_for_events(settings: Settings) -> str | None:
    """The Redis that carries events: the broker when it is Redis, else none."""
    url = settings.resolved_broker_url()
    return url if url.startswith(("redis://", "rediss://")) else None


def make_publisher(settings: Settings) -> EventPublisher:
    """A publisher on the broker's Redis (short timeouts: events must not slow a job)."""
    url = redis_url_for_events(settings)
    if url is None:
        return EventPublisher(None)
    return EventPublisher(redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1))
