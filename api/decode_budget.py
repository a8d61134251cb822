"""A per-process bound on the memory of upload decodes: bytes of decoded pixels in flight.

Each gunicorn process serves many requests at once on its threads, and a full decode of one
large upload holds its whole pixel buffer (a 6300x6300 RGB PNG is 159 MB in Pillow); six at
once took an API process from 120 MB to 927 MB. A decode reserves its buffer's size here
first, and waits while the process's budget is spent; a submission that cannot get it within
the wait is answered 503 with Retry-After instead of growing the process past its memory limit.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from flask import current_app

from shared.settings import Settings

EXTENSION_KEY = "impasto.decode_budget"
_create_lock = threading.Lock()


class DecodeBusy(Exception):
    """The decode budget stayed spent for the whole wait: the caller should try again later."""


class DecodeBudget:
    """A counting bound on bytes, first come first served, so a large decode is not starved by small ones."""

    def __init__(self, capacity_bytes: int, wait_s: float) -> None:
        self.capacity = capacity_bytes
        self.wait_s = wait_s
        self.in_use = 0
        self._changed = threading.Condition()
        self._queue: deque[object] = deque()  # waiting reservations, oldest first

    @contextmanager
    def reserve(self, nbytes: int) -> Iterator[None]:
        """Hold `nbytes` of the budget for the block; DecodeBusy if it is not free within wait_s.

        One decode larger than the whole budget takes all of it (it runs alone), rather than
        being refused: the pixel limit (max_image_pixels), not this budget, says which images
        are too large.
        """
        need = min(nbytes, self.capacity)
        ticket = object()
        deadline = time.monotonic() + self.wait_s
        with self._changed:
            self._queue.append(ticket)
            try:
                while self._queue[0] is not ticket or self.in_use + need > self.capacity:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise DecodeBusy(f"{self.in_use} of {self.capacity} decode bytes in use for {self.wait_s:g} s")
                    self._changed.wait(remaining)
                self.in_use += need
            finally:
                self._queue.remove(ticket)
                self._changed.notify_all()  # the next in line may fit now
        try:
            yield
        finally:
            with self._changed:
                self.in_use -= need
                self._changed.notify_all()


def app_decode_budget(settings: Settings) -> DecodeBudget:
    """This app's budget (one per process: gunicorn's processes each build their app), made on first use."""
    budget: DecodeBudget | None = current_app.extensions.get(EXTENSION_KEY)
    if budget is None:
        with _create_lock:  # two first requests at once must not make two budgets
            budget = current_app.extensions.get(EXTENSION_KEY)
            if budget is None:
                budget = DecodeBudget(settings.upload_decode_memory_bytes, settings.upload_decode_wait_s)
                current_app.extensions[EXTENSION_KEY] = budget
    return budget
