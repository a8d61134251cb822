"""Slots for requests that hold a server thread for long: event streams and `Prefer: wait` submissions.

A gthread process serves with a fixed number of threads, and each of these requests keeps one for
minutes. Their number per process is bounded below the thread count, so some threads always serve
polls, downloads and probes; and each API key gets only a share of that bound, so one key cannot
take every slot and lock the other keys out of streaming. The counts are per API process (the
threads they protect are), kept in memory.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from enum import StrEnum


class Refusal(StrEnum):
    """Why a slot was not given."""

    KEY_FULL = "key_full"  # this key already holds its share on this process
    PROCESS_FULL = "process_full"  # every slot of the process is taken


class HeldRequests:
    """Counts held requests per process and per key; thread-safe."""

    def __init__(self, total: int, per_key: int) -> None:
        self.total = total
        self.per_key = per_key
        self._lock = threading.Lock()
        self._held = 0
        self._by_key: dict[str, int] = {}

    def try_acquire(self, key_id: str) -> Refusal | None:
        """Take a slot for `key_id`; None when taken, else why not (nothing is taken then)."""
        with self._lock:
            if self._by_key.get(key_id, 0) >= self.per_key:
                return Refusal.KEY_FULL
            if self._held >= self.total:
                return Refusal.PROCESS_FULL
            self._held += 1
            self._by_key[key_id] = self._by_key.get(key_id, 0) + 1
            return None

    def release(self, key_id: str) -> None:
        """Give back one slot of `key_id`."""
        with self._lock:
            count = self._by_key.get(key_id, 0)
            if count <= 0:
                raise RuntimeError(f"release without a slot held by key {key_id}")
            self._held -= 1
            if count == 1:
                del self._by_key[key_id]  # keys come and go: keep no entry for a key holding nothing
            else:
                self._by_key[key_id] = count - 1

    def held(self, key_id: str | None = None) -> int:
        """Slots held now, by everyone or by one key."""
        with self._lock:
            return self._held if key_id is None else self._by_key.get(key_id, 0)

    def release_once(self, key_id: str) -> Callable[[], None]:
        """A callable that gives back one slot the first time it is called (a WSGI wrapper may close twice)."""
        held = [True]

        def release() -> None:
            if held:
                held.pop()  # atomic: a second call finds the list empty
                self.release(key_id)

        return release
