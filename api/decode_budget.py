"""A per-process bound on the memory of upload decodes: bytes of decoded pixels in flight.

Each gunicorn process serves many requests at once on its threads, and a full decode of one
large upload holds its whole pixel buffer (a 6300x6300 RGB PNG is 159 MB in Pillow); six at
once took an API process from 120 MB to 927 MB. A decode reserves its buffer's size here
first, and waits while the process's budget is spent; a submission that cannot get it within
the wait is answered 503 with Retry-After instead of growing the process past its memory limit.

A bound on what is in flight only bounds the process if freed pixel buffers leave it; see
return_large_frees_to_the_system.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from flask import current_app

from impasto.api.errors import ApiError
from impasto.shared.settings import Settings

log = logging.getLogger(__name__)

EXTENSION_KEY = "impasto.decode_budget"
_create_lock = threading.Lock()
# glibc's mallopt() option for the size from which malloc maps memory of its own (malloc.h).
M_MMAP_THRESHOLD = -3
# Pillow allocates pixels in blocks of up to 16 MiB; anything this large or larger is mapped.
MMAP_THRESHOLD_BYTES = 4 * 1024 * 1024


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


def return_large_frees_to_the_system() -> bool:
    """Have glibc map every allocation of MMAP_THRESHOLD_BYTES or more, so that freeing it gives it back.

    By default glibc raises its threshold after the first large free (up to 32 MiB) and then serves
    Pillow's 16 MiB pixel blocks, and large request bodies, from per-thread arenas that keep what is
    freed: each of gunicorn's threads that ever decoded a large image stays that much larger. Measured
    (tests/e2e/test_upload_memory.py): six concurrent submissions of three 6000x6000 PNGs, decoded one
    at a time under the budget, still left the API process at 983 MB; with this, 263 MB at the peak
    and 109 MB afterwards. A fixed threshold also stops glibc's adjusting it. False where the C
    library has no such option (macOS, musl): nothing to tune there.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


def app_decode_budget(settings: Settings) -> DecodeBudget:
    """This app's budget (one per process: gunicorn's processes each build their app), made on first use."""
    budget: DecodeBudget | None = current_app.extensions.get(EXTENSION_KEY)
    if budget is None:
        with _create_lock:  # two first requests at once must not make two budgets
            budget = current_app.extensions.get(EXTENSION_KEY)
            if budget is None:
                budget = DecodeBudget(settings.upload_decode_memory_bytes, settings.upload_decode_wait_s)
                if not return_large_frees_to_the_system():
                    log.info("this C library has no mallopt(M_MMAP_THRESHOLD); freed decode memory may stay")
                current_app.extensions[EXTENSION_KEY] = budget
    return budget


# Retry-After of the 503 when the decode budget stays spent: a few decodes' time.
DECODE_RETRY_AFTER_S = 5


def decode_busy(what: str) -> ApiError:
    """The 503 with Retry-After for a request whose decode found the budget spent (`what`: uploads, images)."""
    return ApiError(
        503,
        "server_busy",
        f"the server is decoding other {what}; retry shortly",
        headers={"Retry-After": str(DECODE_RETRY_AFTER_S)},
    )
