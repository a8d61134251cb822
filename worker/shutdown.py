"""Graceful shutdown: SIGTERM asks the running job to checkpoint and hand itself back, within
shutdown_timeout_s; past it the process exits anyway (the job's lease then expires and the
reconciler queues it again from its last recorded checkpoint)."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from celery.signals import worker_shutting_down

from impasto.shared.settings import get_settings

log = logging.getLogger(__name__)

# Set when the worker is told to stop; the running job's should_stop() reads it.
shutdown_requested = threading.Event()

# Exit status of a worker that outlived its shutdown bound (as a supervisor's SIGKILL would end it).
OVERDUE_EXIT_CODE = 1


@worker_shutting_down.connect
def _on_worker_shutting_down(**_: Any) -> None:
    """Celery's warm shutdown (SIGTERM, SIGINT) waits for the task; make the task end soon."""
    if shutdown_requested.is_set():
        return
    shutdown_requested.set()
    start_shutdown_deadline(get_settings().shutdown_timeout_s)


def start_shutdown_deadline(timeout_s: float) -> threading.Timer:
    """End the process after `timeout_s` if the warm shutdown has not by then.

    A job stops within one iteration, but its hand-back write retries while SQL is down (up to
    db_retry_s), and a plain `impasto worker` has no supervisor to enforce the bound that the
    deploy grace periods are set above.
    """

    def overdue() -> None:
        log.error("still running %.0f s after the shutdown request; exiting now", timeout_s)
        logging.shutdown()
        os._exit(OVERDUE_EXIT_CODE)

    timer = threading.Timer(timeout_s, overdue)
    timer.daemon = True  # a clean shutdown before the deadline is not held up by it
    timer.start()
    return timer
