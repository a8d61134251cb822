"""A worker running a job stays visible: it answers `inspect ping/active`, sends heartbeats, reports
the task STARTED on itself, and still hands the job back on SIGTERM. Real worker process, Redis, PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.events.state import State

from impasto.shared.celery_app import make_celery
from impasto.shared.database import make_engine, make_sessionmaker, upgrade_database
from impasto.shared.enqueue import enqueue_job
from impasto.shared.job_params import JobParams
from impasto.shared.jobs import create_job
from impasto.shared.models import Job
from impasto.shared.settings import Settings, get_settings
from impasto.shared.storage import make_storage, upload_key
from impasto.shared.task_names import SMALL_QUEUE
from tests.e2e.conftest import free_port
from tests.worker.test_worker_metrics import listening_hosts

ROOT = Path(__file__).resolve().parents[2]
NODE = "busy@localhost"


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `check` until it returns something truthy; that value, or an assertion naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not after {timeout} s"
        time.sleep(0.2)


def insert_job(settings: Settings, samples: Path, iterations: int) -> str:
    """Store the sample images, insert a queued job and send its message; its id."""
    storage = make_storage(settings.resolved_storage_url())
    keys = []
    for name in ("chelsea.jpg", "starry_night.jpg"):
        data = (samples / name).read_bytes()
        keys.append(upload_key(data, "jpg"))
        storage.put(keys[-1], data)
    params = JobParams(size=48, iterations=iterations, snapshot_every=5).model_dump(mode="json")
    engine = make_engine(settings)
    celery = make_celery(settings)
    try:
        with make_sessionmaker(engine)() as session:
            job = create_job(session, params=params, content_key=keys[0], style_keys=keys[1:], queue=SMALL_QUEUE)
            session.commit()
            assert enqueue_job(celery, session, job.id, SMALL_QUEUE)
            return job.id
    finally:
        celery.close()
        engine.dispose()


def job_row(settings: Settings, job_id: str) -> Job:
    """The job's row as SQL has it now."""
    engine = make_engine(settings)
    try:
        with make_sessionmaker(engine)() as session:
            return session.get_one(Job, job_id)
    finally:
        engine.dispose()


class EventWatcher:
    """Celery's event stream (what Flower reads) folded into a celery.events.state.State, in a thread."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.state = State()
        self.heartbeats: list[float] = []  # when each heartbeat of NODE arrived (monotonic)
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _on_event(self, event: dict[str, Any]) -> None:
        self.state.event(event)
        if event["type"] == "worker-heartbeat" and event["hostname"] == NODE:
            self.heartbeats.append(time.monotonic())

    def _run(self) -> None:
        with self.app.connection_for_read() as connection:
            receiver = self.app.events.Receiver(connection, handlers={"*": self._on_event})
            self.ready.set()
            while not self.stopping.is_set():
                try:
                    receiver.capture(limit=None, timeout=0.5, wakeup=False)
                except TimeoutError:  # socket.timeout: no event this half second
                    continue

    def __enter__(self) -> EventWatcher:
        self.thread.start()
        assert self.ready.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        self.thread.join(5)


@pytest.fixture
def settings(tmp_path: Path, postgres_url: str, redis_url: str) -> Settings:
    """PostgreSQL, the test Redis as broker, local storage; migrated."""
    settings = get_settings(
        data_dir=tmp_path / "data",
        database_url=postgres_url,
        broker_url=redis_url,
        storage_url=f"file://{tmp_path / 'storage'}",
    )
    upgrade_database(settings)
    return settings


@pytest.fixture
def metrics_port() -> int:
    """A free port for the worker's metrics."""
    return free_port()


@pytest.fixture
def worker(settings: Settings, tmp_path: Path, metrics_port: int) -> Iterator[subprocess.Popen[bytes]]:
    """`impasto worker --name busy@localhost` as a real process (SIGKILLed if a test leaves it running)."""
    env = {
        **os.environ,
        "IMPASTO_DATA_DIR": str(settings.data_dir),
        "IMPASTO_DATABASE_URL": settings.resolved_database_url(),
        "IMPASTO_BROKER_URL": settings.resolved_broker_url(),
        "IMPASTO_STORAGE_URL": settings.resolved_storage_url(),
        "IMPASTO_DEVICE": "cpu",
        "IMPASTO_PROGRESS_INTERVAL_S": "0.2",
        "OMP_NUM_THREADS": "1",
        "IMPASTO_WORKER_METRICS_PORT": str(metrics_port),  # on the default host: loopback only
    }
    with open(tmp_path / "worker.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "impasto.cli", "worker", "--name", NODE],
            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    yield process
    if process.poll() is None:
        process.kill()
        process.wait()


def test_a_worker_running_a_job_answers_control_and_shows_its_task_started(
    settings: Settings, worker: subprocess.Popen[bytes], metrics_port: int, samples: Path, tmp_path: Path
) -> None:
    """Mid-job: ping and active answer within 2 s, heartbeats keep coming, the task is STARTED on the
    worker; then SIGTERM still hands the job back and the process exits cleanly."""
    app = make_celery(settings)
    inspect = app.control.inspect(timeout=2, destination=[NODE])
    log = tmp_path / "worker.log"
    try:
        wait_until(lambda: inspect.ping(), 120, f"worker answers ping when idle\n{log.read_text()[-2000:]}")
        assert listening_hosts(metrics_port) == {"127.0.0.1"}, "the metrics port keeps to loopback by default"
        with EventWatcher(app) as events:
            job_id = insert_job(settings, samples, iterations=5000)
            wait_until(lambda: job_row(settings, job_id).iteration >= 5, 120, "the job is running")

            asked = time.monotonic()
            assert inspect.ping() == {NODE: {"ok": "pong"}}
            active = inspect.active()
            answered = time.monotonic() - asked
            assert active is not None and [t["args"] for t in active[NODE]] == [[job_id]], active
            assert answered < 5.0, answered  # two round trips with 2 s timeouts, each answered, not timed out

            # Heartbeats (Flower's "online") come every 2 s while the job runs, and the task is STARTED there.
            beats_before = len(events.heartbeats)
            wait_until(lambda: len(events.heartbeats) >= beats_before + 2, 15, "heartbeats during the job")
            task = wait_until(
                lambda: next((t for t in events.state.tasks.values() if t.args and job_id in t.args), None),
                10,
                "the task's events",
            )
            assert task.state == "STARTED" and task.worker.hostname == NODE, (task.state, task.worker)
            assert events.state.workers[NODE].alive
            assert job_row(settings, job_id).status == "running"

        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0, log.read_text()[-3000:]
        handed_back = job_row(settings, job_id)
        assert handed_back.status == "queued" and handed_back.lease_owner is None, log.read_text()[-3000:]
        assert 5 <= handed_back.iteration < 5000
    finally:
        app.close()
