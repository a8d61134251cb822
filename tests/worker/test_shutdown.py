"""The shutdown bound of a plain worker process: past shutdown_timeout_s it exits by itself."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

# A process that receives Celery's warm-shutdown signal and then hangs, as a job whose hand-back
# write keeps retrying against a database that is down would.
HANGING_WORKER = textwrap.dedent(
    """
    import logging, time
    from celery.signals import worker_shutting_down
    import impasto.worker.shutdown
    logging.basicConfig(level=logging.INFO)
    worker_shutting_down.send(sender="test", sig="SIGTERM", how="Warm", exitcode=0)
    assert impasto.worker.shutdown.shutdown_requested.is_set()
    time.sleep(60)
    """
)


def test_a_worker_that_does_not_stop_exits_at_its_shutdown_bound() -> None:
    """IMPASTO_SHUTDOWN_TIMEOUT_S after the request the process is gone, with status 1 and a log line."""
    env = {**os.environ, "IMPASTO_SHUTDOWN_TIMEOUT_S": "1.5"}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", HANGING_WORKER], env=env, capture_output=True, text=True, timeout=30)
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    assert "exiting now" in done.stderr
    assert 1.5 <= elapsed < 20, elapsed  # its own bound, not the 60 s sleep (import time on a busy machine)
