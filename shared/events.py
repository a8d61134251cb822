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

from impasto.shared.settings import Settings
from impasto.shared.status import FINISHED

log = logging.getLogger(__name__)

FINISHED_VALUES = frozenset(status.value for status in FINISHED)

STREAM_MAXLEN = 2000  # entries kept per job; progress is throttled, so this spans a whole job
# Every publish pushes the expiry forward: a live job's stream stays while it runs (or waits,
# handed back, in the queue for up to a day). Once the job has ended, SQL holds all a late reader
# needs, so its stream goes after an hour: long enough for a dropped client to resume with
# Last-Event-ID, short enough that Redis does not carry every finished job's history.
STREAM_TTL_S = 24 * 3600
FINISHED_STREAM_TTL_S = 3600


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
            pipe.expire(key, FINISHED_STREAM_TTL_S if _ends_the_job(event, data) else STREAM_TTL_S)
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("job %s: %s event not published (%s)", job_id, event, exc)

    def close(self) -> None:
        """Release the connection pool."""
        if self.client is not None:
            self.client.close()


def _ends_the_job(event: str, data: dict[str, Any]) -> bool:
    return event == "completed" or (event == "status" and data.get("status") in FINISHED_VALUES)


def redis_url_for_events(settings: Settings) -> str | None:
    """The Redis that carries events: IMPASTO_EVENTS_REDIS_URL, else the broker when it is Redis, else none."""
    url = settings.events_redis_url or settings.resolved_broker_url()
    return url if url.startswith(("redis://", "rediss://")) else None


def make_publisher(settings: Settings) -> EventPublisher:
    """A publisher on the broker's Redis (short timeouts: events must not slow a job)."""
    url = redis_url_for_events(settings)
    if url is None:
        return EventPublisher(None)
    return EventPublisher(redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1))
