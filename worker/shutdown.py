"""Graceful shutdown: SIGTERM asks the running job to checkpoint and hand itself back."""

from __future__ import annotations

import threading
from typing import Any

from celery.signals import worker_shutting_down

# Set when the worker is told to stop; the running job's should_stop() reads it.
shutdown_requested = threading.Event()


@worker_shutting_down.connect
def _on_worker_shutting_down(**_: Any) -> None:
    """Celery's warm shutdown (SIGTERM, SIGINT) waits for the task; make the task end soon."""
    shutdown_requested.set()
