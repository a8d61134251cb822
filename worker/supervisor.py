"""A parent that keeps a set of child processes running: it restarts one that dies (with a
back-off), passes SIGTERM on for their graceful shutdown, waits a bounded time, and exits."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from types import FrameType

log = logging.getLogger(__name__)

# Restart back-off: the first restart after BACKOFF_S, doubling for each death in a row up to
# MAX_BACKOFF_S, so a child that cannot start (bad config, a dead GPU) does not spin; a child
# that ran STABLE_S or longer before dying starts the count afresh.
BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
STABLE_S = 60.0
# How often the parent looks at its children.
POLL_S = 0.2
PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass(frozen=True)
class ChildSpec:
    """One child: a name for the logs, its command line and its whole environment."""

    name: str
    argv: list[str]
    env: dict[str, str]


@dataclass
class Child:
    """A child's current process and its restart bookkeeping."""

    spec: ChildSpec
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    deaths_in_a_row: int = 0
    restart_at: float = 0.0
    starts: int = 0


def restart_delay(deaths_in_a_row: int, backoff_s: float = BACKOFF_S, max_backoff_s: float = MAX_BACKOFF_S) -> float:
    """Seconds to wait before restarting a child that died this many times in a row."""
    return float(min(max_backoff_s, backoff_s * 2 ** max(0, deaths_in_a_row - 1)))


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM (a graceful shutdown) if the parent dies first."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: a killed parent leaves its children running
        pass


class Supervisor:
    """Runs the children until SIGTERM or SIGINT, then shuts them down gracefully."""

    def __init__(
        self,
        specs: list[ChildSpec],
        shutdown_timeout_s: float,
        backoff_s: float = BACKOFF_S,
        max_backoff_s: float = MAX_BACKOFF_S,
        stable_s: float = STABLE_S,
    ) -> None:
        self.children = [Child(spec) for spec in specs]
        self.shutdown_timeout_s = shutdown_timeout_s
        self.backoff_s, self.max_backoff_s, self.stable_s = backoff_s, max_backoff_s, stable_s
        self.stopping = threading.Event()

    def request_stop(self, signum: int | None = None, _frame: FrameType | None = None) -> None:
        """Begin the shutdown (the SIGTERM and SIGINT handler)."""
        if signum is not None:
            log.info("%s: stopping %d children", signal.Signals(signum).name, len(self.children))
        self.stopping.set()

    def _start(self, child: Child) -> None:
        # A process group of its own: a terminal's Ctrl-C reaches the parent only, and the parent
        # sends each child exactly one SIGTERM (a second signal would turn Celery's warm shutdown cold).
        child.process = subprocess.Popen(
            child.spec.argv, env=child.spec.env, process_group=0, preexec_fn=_die_with_parent
        )
        child.started_at = time.monotonic()
        child.starts += 1
        log.info("started %s (pid %d)", child.spec.name, child.process.pid)

    def _check(self, child: Child, now: float) -> None:
        if child.process is None:
            if now >= child.restart_at:
                self._start(child)
            return
        code = child.process.poll()
        if code is None:
            return
        lived = now - child.started_at
        child.deaths_in_a_row = 1 if lived >= self.stable_s else child.deaths_in_a_row + 1
        delay = restart_delay(child.deaths_in_a_row, self.backoff_s, self.max_backoff_s)
        log.warning("%s exited with code %s after %.1f s; restarting in %.1f s", child.spec.name, code, lived, delay)
        child.process = None
        child.restart_at = now + delay

    def run(self) -> int:
        """Start every child, keep them running until asked to stop, then shut down; the exit code."""
        for child in self.children:
            self._start(child)
        while not self.stopping.wait(POLL_S):
            now = time.monotonic()
            for child in self.children:
                self._check(child, now)
        return self.shutdown()

    def shutdown(self) -> int:
        """SIGTERM every child, wait up to shutdown_timeout_s in all, then SIGKILL; 0 if all ended cleanly."""
        running = [c for c in self.children if c.process is not None and c.process.poll() is None]
        for child in running:
            assert child.process is not None
            child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.shutdown_timeout_s
        clean = True
        for child in running:
            assert child.process is not None
            try:
                code = child.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("%s did not stop within %.0f s; killing it", child.spec.name, self.shutdown_timeout_s)
                child.process.kill()
                code = child.process.wait()
            clean = clean and code == 0
            log.info("%s stopped (code %s)", child.spec.name, code)
        return 0 if clean else 1


def run_supervisor(supervisor: Supervisor) -> int:
    """Run with SIGTERM and SIGINT routed to a graceful stop; the exit code."""
    previous = {s: signal.signal(s, supervisor.request_stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        return supervisor.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        log.info("supervisor pid %d exiting", os.getpid())
