"""The supervising parent with stand-in children: restarts with back-off, SIGTERM passed on, bounded waits."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from impasto.worker.supervisor import ChildSpec, Supervisor, restart_delay

# A child that notes each start and each SIGTERM in a file, then exits cleanly on SIGTERM.
CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    log = sys.argv[1]
    def note(word):
        with open(log, "a") as handle:
            handle.write(f"{word} {os.getpid()}\\n")
    def stop(*_):
        note("term")
        time.sleep(float(sys.argv[2]))  # the graceful shutdown's work (checkpoint, hand back)
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    note("start")
    while True:
        time.sleep(0.05)
    """
)


def spec(tmp_path: Path, name: str, shutdown_s: float = 0.0) -> ChildSpec:
    """A stand-in child that logs to tmp_path/name.log."""
    return ChildSpec(name, [sys.executable, "-c", CHILD, str(tmp_path / f"{name}.log"), str(shutdown_s)], {})


def lines(tmp_path: Path, name: str) -> list[str]:
    """What child `name` has noted so far."""
    path = tmp_path / f"{name}.log"
    return path.read_text().split("\n")[:-1] if path.exists() else []


def wait_for(condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    """Poll until condition() is true."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def in_thread(supervisor: Supervisor) -> tuple[threading.Thread, list[int]]:
    """Run the supervisor's loop in a thread (signals go to the main thread, so stops use request_stop)."""
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(supervisor.run()))
    thread.start()
    return thread, codes


@pytest.mark.parametrize(("deaths", "delay"), [(1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0), (6, 30.0), (50, 30.0)])
def test_restart_delay_doubles_up_to_a_cap(deaths: int, delay: float) -> None:
    """1, 2, 4, ... seconds, never more than 30."""
    assert restart_delay(deaths) == delay


def test_a_dead_child_is_restarted_and_the_others_keep_running(tmp_path: Path) -> None:
    """Kill one child twice: it comes back each time after its back-off; its sibling is untouched."""
    supervisor = Supervisor([spec(tmp_path, "a"), spec(tmp_path, "b")], shutdown_timeout_s=5, backoff_s=0.3)
    thread, codes = in_thread(supervisor)
    try:
        wait_for(lambda: len(lines(tmp_path, "a")) == 1 and len(lines(tmp_path, "b")) == 1)
        first_b = supervisor.children[1].process
        for restarts in (1, 2):
            process = supervisor.children[0].process
            assert process is not None
            killed = time.monotonic()
            process.kill()
            wait_for(lambda n=restarts: len(lines(tmp_path, "a")) == 1 + n)
            # back-off: 0.3 s after the first death in a row, 0.6 s after the second
            assert time.monotonic() - killed >= 0.3 * restarts
        assert supervisor.children[1].process is first_b and supervisor.children[0].starts == 3
    finally:
        supervisor.request_stop()
        thread.join(10)
    assert codes == [0]
    assert [w.split()[0] for w in lines(tmp_path, "a")] == ["start", "start", "start", "term"]
    assert [w.split()[0] for w in lines(tmp_path, "b")] == ["start", "term"]


def test_shutdown_waits_for_graceful_children_then_kills_the_rest(tmp_path: Path) -> None:
    """One child takes 0.5 s to stop, another 30 s; with a 2 s bound the second is killed."""
    supervisor = Supervisor([spec(tmp_path, "quick", 0.5), spec(tmp_path, "stuck", 30)], shutdown_timeout_s=2)
    thread, codes = in_thread(supervisor)
    wait_for(lambda: lines(tmp_path, "quick") and lines(tmp_path, "stuck"))
    asked = time.monotonic()
    supervisor.request_stop()
    thread.join(10)
    took = time.monotonic() - asked
    assert 1.8 < took < 5, took
    assert codes == [1], "a killed child makes the exit code non-zero"
    assert [c.process.returncode for c in supervisor.children if c.process] == [0, -signal.SIGKILL]


def test_sigterm_to_the_parent_reaches_each_child_once(tmp_path: Path) -> None:
    """A real parent process: SIGTERM to it means one SIGTERM to each child, then a clean exit."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from impasto.worker.supervisor import ChildSpec, Supervisor, run_supervisor
        specs = [ChildSpec(n, [sys.executable, "-c", {CHILD!r}, {str(tmp_path)!r} + f"/{{n}}.log", "0.2"], {{}})
                 for n in ("a", "b")]
        sys.exit(run_supervisor(Supervisor(specs, shutdown_timeout_s=5)))
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        wait_for(lambda: lines(tmp_path, "a") and lines(tmp_path, "b"))
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(10) == 0
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
    for name in ("a", "b"):
        assert [w.split()[0] for w in lines(tmp_path, name)] == ["start", "term"]


def test_children_die_with_a_killed_parent(tmp_path: Path) -> None:
    """SIGKILL to the parent: each child still gets SIGTERM (PR_SET_PDEATHSIG) and shuts down."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from impasto.worker.supervisor import ChildSpec, Supervisor, run_supervisor
        spec = ChildSpec("a", [sys.executable, "-c", {CHILD!r}, {str(tmp_path / "a.log")!r}, "0"], {{}})
        run_supervisor(Supervisor([spec], shutdown_timeout_s=5))
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    wait_for(lambda: lines(tmp_path, "a"))
    parent.kill()
    parent.wait()
    wait_for(lambda: len(lines(tmp_path, "a")) == 2)
    assert lines(tmp_path, "a")[1].startswith("term")
