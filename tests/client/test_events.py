"""Client.events against the real API: a connection cut mid-stream (by a TCP relay between the
client and gunicorn) is resumed with Last-Event-ID, losing and repeating nothing."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from impasto import Client, ImpastoError
from tests.client.conftest import Stack, tiny_png


@dataclass
class CuttingRelay:
    """Relays TCP connections to `target_port`; the first one is cut when the server sends a progress event."""

    target_port: int
    port: int = 0
    requests: list[bytes] = field(default_factory=list)  # the first bytes each connection sent
    cut: bool = False

    def serve(self, listener: socket.socket) -> None:
        """Accept connections until the listener is closed."""
        while True:
            try:
                downstream, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            first = not self.requests
            self.requests.append(b"")
            index = len(self.requests) - 1
            threading.Thread(target=self.pump_requests, args=(downstream, upstream, index), daemon=True).start()
            threading.Thread(target=self.pump_answers, args=(upstream, downstream, first), daemon=True).start()

    def pump_requests(self, source: socket.socket, sink: socket.socket, index: int) -> None:
        """Client to server, keeping what was sent (the request headers)."""
        while data := receive(source):
            self.requests[index] += data
            sink.sendall(data)

    def pump_answers(self, source: socket.socket, sink: socket.socket, cut_at_progress: bool) -> None:
        """Server to client; on the first connection, the data with a progress event is dropped and both ends closed."""
        while data := receive(source):
            if cut_at_progress and b"event: progress" in data:
                self.cut = True
                break
            sink.sendall(data)
        for end in (source, sink):
            end.close()


def receive(sock: socket.socket) -> bytes:
    """The next bytes, or b"" once the socket is closed."""
    try:
        return sock.recv(65536)
    except OSError:
        return b""


@pytest.fixture
def relay(stack: Stack) -> Iterator[CuttingRelay]:
    """A cutting relay in front of the stack's API."""
    listener = socket.create_server(("127.0.0.1", 0))
    relay = CuttingRelay(int(stack.url.rsplit(":", 1)[1]), listener.getsockname()[1])
    threading.Thread(target=relay.serve, args=(listener,), daemon=True).start()
    yield relay
    listener.close()


def id_key(event_id: str) -> tuple[int, ...]:
    """A Redis stream id as a sortable tuple."""
    return tuple(int(part) for part in event_id.split("-"))


def test_events_resume_after_a_dropped_connection(stack: Stack, relay: CuttingRelay) -> None:
    """The stream is cut at the first progress event; the client reconnects with the last id it saw
    and ends with `completed`; every id comes once, in order, and no snapshot is lost."""
    job = stack.client().submit(tiny_png(), tiny_png(), size=24, iterations=30, snapshot_every=10)
    events = list(Client(f"http://127.0.0.1:{relay.port}", stack.api_key).events(job["id"]))
    assert relay.cut and len(relay.requests) == 2
    assert events[0].event == "status" and events[0].id
    # A resumed stream opens with the job's state, without an id (the client's last id stays).
    resumed_at = next(i for i, event in enumerate(events) if i and event.event == "status" and event.id is None)
    last_seen = [event.id for event in events[:resumed_at] if event.id is not None][-1]
    assert f"Last-Event-ID: {last_seen}".encode() in relay.requests[1]
    assert b"Last-Event-ID" not in relay.requests[0]
    assert "progress" not in [event.event for event in events[:resumed_at]]  # the cut came before it
    assert events[-1].event == "completed" and events[-1].data["status"] == "succeeded"
    ids = [event.id for event in events if event.id is not None]
    assert [id_key(i) for i in ids] == sorted(id_key(i) for i in ids) and len(set(ids)) == len(ids)
    progress = [event.data["iteration"] for event in events if event.event == "progress"]
    assert progress and progress == sorted(progress) and events[-1].data["progress"]["iteration"] == 30
    assert [event.data["iteration"] for event in events if event.event == "snapshot"] == [10, 20, 30]


def test_events_of_a_missing_job_raise_at_once(stack: Stack) -> None:
    """A 404 is the API's answer, not a dropped connection: no reconnecting."""
    with pytest.raises(ImpastoError) as caught:
        next(stack.client().events("00000000-0000-0000-0000-000000000000"))
    assert (caught.value.status, caught.value.code) == (404, "not_found")
