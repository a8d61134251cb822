"""Server-Sent Events, parsed from text lines as the HTML standard's event-stream rules say."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Event:
    """One event of a job's stream: `status`, `progress`, `snapshot` or `completed`."""

    event: str
    data: dict[str, Any]
    id: str | None  # the event's own id (None when it has none); a reconnect sends the last one seen


def parse_sse(lines: Iterable[str]) -> Iterator[Event]:
    """Events from text lines (no line endings); comments (heartbeats) are skipped."""
    event, data, event_id = "message", "", None
    for line in lines:
        if not line:
            if data:
                yield Event(event, json.loads(data), event_id)
            event, data, event_id = "message", "", None
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data = f"{data}\n{value}" if data else value
        elif name == "id" and "\0" not in value:
            event_id = value
