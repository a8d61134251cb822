"""Fault injection with real processes: workers killed (-9) or stopped (SIGTERM) mid-job, Redis flushed,
duplicate deliveries, PostgreSQL restarted. SQL (job_status_history, jobs) and storage are the judges."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
import requests
from PIL import Image
from sqlalchemy import Engine, RowMapping, create_engine, text

from impasto.background.broker_loss import SENTINEL_KEY
from impasto.shared.api_keys import issue_key
from impasto.shared.celery_app import make_celery
from impasto.shared.enqueue import send_transfer
from impasto.shared.settings import get_settings
from impasto.shared.task_names import SMALL_QUEUE
from tests.e2e.conftest import ROOT, Processes, free_port, wait_ready
from tests.e2e.rabbitmq import rabbitmq_vhost

T = TypeVar("T")

# Short timings, so a lost worker's lease expires and is handed back within seconds.
FAST_ENV = {
    "IMPASTO_LEASE_SECONDS": "3",
    "IMPASTO_RECONCILE_INTERVAL_S": "0.5",
    "IMPASTO_ENQUEUE_GRACE_S": "1",
    "IMPASTO_REQUEUE_AFTER_S": "3",
    "IMPASTO_PROGRESS_INTERVAL_S": "0.2",
    "IMPASTO_CANCEL_POLL_S": "0.2",
    "IMPASTO_DEVICE": "cpu",
    # The soak submits 40 jobs with one key and the tests poll SQL, not HTTP; keep the API's limits out of it.
    "IMPASTO_MAX_ACTIVE_JOBS": "1000",
    "IMPASTO_RATE_LIMIT": "100000 per minute",
    # One torch thread a worker: two workers on this 2-core machine oversubscribe otherwise (5x slower).
    "OMP_NUM_THREADS": "1",
}
FINISHED = ("succeeded", "failed", "canceled")
TINY_JOB = {"size": 48, "iterations": 20, "snapshot_every": 5}
KILL_EVERY_DONE = 3  # the soak kills a worker at least this often, counted in finished jobs


def wait_for(check: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    """Call `check` until it returns something truthy; that value, or TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout} s")
        time.sleep(interval)


@dataclass(frozen=True)
class Transition:
    """One row of job_status_history."""

    status: str
    worker: str | None
    attempt: int
    at: datetime


def node_of(owner: str | None) -> str | None:
    """The worker's node name in a lease owner or history worker ('w1@localhost/pid/hex' -> 'w1@localhost')."""
    return owner.split("/", 1)[0] if owner else None


def run_problems(rows: list[Transition]) -> list[str]:
    """What in a job's history shows two runs at once; empty when runs are strictly one after another.

    Every 'running' row must be followed, before the next 'running', by a 'queued' or end row of the
    same attempt, and the [running.at, end.at] intervals must not overlap.
    """
    problems: list[str] = []
    open_run: Transition | None = None
    last_end: datetime | None = None
    for row in rows:
        if row.status == "running":
            if open_run is not None:
                problems.append(
                    f"attempt {row.attempt} ({row.worker}) started at {row.at} while attempt {open_run.attempt} "
                    f"({open_run.worker}, since {open_run.at}) had not ended"
                )
            if last_end is not None and row.at < last_end:
                problems.append(
                    f"attempt {row.attempt} started at {row.at}, before the previous run ended at {last_end}"
                )
            open_run = row
        elif open_run is not None:
            if row.attempt != open_run.attempt:
                problems.append(f"a {row.status} row of attempt {row.attempt} ended run attempt {open_run.attempt}")
            if row.at < open_run.at:
                problems.append(f"attempt {row.attempt} ended at {row.at}, before it started at {open_run.at}")
            last_end = row.at
            open_run = None
    return problems


def assert_no_overlapping_runs(rows: list[Transition]) -> None:
    """Fail when the history shows two workers running the job at the same time."""
    problems = run_problems(rows)
    assert not problems, "\n".join(problems) + "\n" + "\n".join(map(str, rows))


def assert_png(path: Path, size: int | None = None) -> Image.Image:
    """The PNG at `path`, fully decoded (a half-written file fails here)."""
    assert path.is_file(), f"{path} is missing"
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.load()
        if size is not None:
            assert max(image.size) == size
        return image.copy()


class FaultStack:
    """PostgreSQL, Redis, local storage; the API (gunicorn), the reconciler and workers as processes.

    Workers get fresh names (w1, w2, ...) so a restarted one is told apart in logs and history.
    """

    def __init__(self, tmp_path: Path, postgres_url: str, redis_url: str, **env: str) -> None:
        self.tmp_path = tmp_path
        self.database_url = postgres_url
        self.redis_url = redis_url
        self.storage_root = tmp_path / "storage"
        self.env = {
            **os.environ,
            "IMPASTO_DATA_DIR": str(tmp_path / "data"),
            "IMPASTO_DATABASE_URL": postgres_url,
            "IMPASTO_BROKER_URL": redis_url,
            "IMPASTO_STORAGE_URL": f"file://{self.storage_root}",
            **FAST_ENV,
            **env,
        }
        self.processes = Processes(self.env, tmp_path)
        self.engine: Engine = create_engine(postgres_url, pool_pre_ping=True)
        self.redis = redis.Redis.from_url(redis_url)
        self.url = ""
        self.key = ""
        self.worker_count = 0
        self.kills = 0
        self.killed_at: dict[str, datetime] = {}  # worker process name -> when it was killed

    def start(self, workers: int = 1, reconciler: bool = True) -> FaultStack:
        """Migrate, make an API key, start the API, the reconciler and `workers` workers."""
        subprocess.run(
            [sys.executable, "-m", "impasto.cli", "db", "upgrade"],
            env=self.env,
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        self.key = issue_key(get_settings(database_url=self.database_url), "faults")
        port = free_port()
        self.processes.start("api", "api", "--port", str(port), "--workers", "1")
        if reconciler:
            self.processes.start("reconciler", "reconcile", "--interval", self.env["IMPASTO_RECONCILE_INTERVAL_S"])
        for _ in range(workers):
            self.start_worker()
        self.url = f"http://127.0.0.1:{port}"
        wait_ready(self.url)
        return self

    def close(self) -> None:
        """Stop every process; close the SQL engine and the Redis client."""
        try:
            self.processes.stop_all()
        finally:
            self.engine.dispose()
            self.redis.close()

    # Workers

    def start_worker(self) -> str:
        """Start a worker with a new name; returns its process name (its node is NAME@localhost)."""
        self.worker_count += 1
        name = f"w{self.worker_count}"
        self.processes.start(name, "worker", "--name", f"{name}@localhost")
        return name

    def wait_worker_ready(self, name: str, timeout: float = 90) -> None:
        """Wait until Celery says the worker consumes."""
        wait_for(lambda: "ready." in self.processes.log(name), timeout, f"worker {name} ready")

    def process(self, name: str) -> subprocess.Popen[bytes]:
        """The child process called `name`."""
        return self.processes.children[name]

    def alive_workers(self) -> list[str]:
        """Names of the worker processes still running."""
        return [n for n, p in self.processes.children.items() if n.startswith("w") and p.poll() is None]

    def kill(self, name: str) -> None:
        """kill -9 a child and reap it."""
        process = self.process(name)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
        self.kills += 1
        self.killed_at[name] = datetime.now(UTC)

    def worker_running(self, job_id: str) -> str | None:
        """The process name of the live worker that holds the job's lease, if any."""
        job = self.job(job_id)
        node = node_of(job["lease_owner"]) if job["status"] == "running" else None
        name = node.split("@", 1)[0] if node else None
        return name if name in self.alive_workers() else None

    # Jobs

    def submit(self, params: dict[str, Any], samples: Path) -> str:
        """POST a job (the bundled cat in Starry Night's style); its id."""
        files = [
            ("content", ("chelsea.jpg", (samples / "chelsea.jpg").read_bytes(), "image/jpeg")),
            ("style", ("starry_night.jpg", (samples / "starry_night.jpg").read_bytes(), "image/jpeg")),
        ]
        response = requests.post(
            f"{self.url}/v1/jobs",
            files=files,
            data={"params": json.dumps(params)},
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=30,
        )
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    def job(self, job_id: str) -> RowMapping:
        """The job's row."""
        with self.engine.connect() as conn:
            return conn.execute(text("SELECT * FROM jobs WHERE id = :id"), {"id": job_id}).mappings().one()

    def history(self, job_id: str) -> list[Transition]:
        """The job's status history, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT status, worker, attempt, at FROM job_status_history WHERE job_id = :id ORDER BY id"),
                {"id": job_id},
            ).all()
        return [Transition(*row) for row in rows]

    def snapshots(self, job_id: str) -> list[tuple[int, datetime]]:
        """(iteration, created_at) of the job's recorded snapshots, by iteration."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT iteration, created_at FROM job_snapshots WHERE job_id = :id ORDER BY iteration"),
                {"id": job_id},
            ).all()
        return [(int(r[0]), r[1]) for r in rows]

    def statuses(self, job_ids: list[str]) -> dict[str, str]:
        """Each job's current status."""
        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT id, status FROM jobs WHERE id = ANY(:ids)"), {"ids": job_ids}).all()
        return {r[0]: r[1] for r in rows}

    def wait_finished(self, job_id: str, timeout: float) -> RowMapping:
        """Wait for the job to end; its row."""
        wait_for(lambda: self.job(job_id)["status"] in FINISHED, timeout, f"job {job_id} finished\n{self.logs()}")
        return self.job(job_id)

    def wait_snapshot(self, job_id: str, timeout: float = 90) -> int:
        """Wait until the job has a snapshot (its first checkpoint); its iteration."""
        return wait_for(
            lambda: next((i for i, _ in self.snapshots(job_id)), 0), timeout, f"job {job_id}'s first snapshot"
        )

    def final_png(self, job_id: str) -> Path:
        """Where the job's final image is stored."""
        return self.storage_root / "jobs" / job_id / "final.png"

    def logs(self, tail: int = 2500) -> str:
        """The end of every child's log, for failure messages."""
        return "\n".join(f"--- {n} ---\n{self.processes.log(n)[-tail:]}" for n in self.processes.children)


@pytest.fixture
def fault_redis_url(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A Redis server of the test's own (the shared one's databases are flushed and consumed by other test runs
    on this machine, which would take or drop these tests' messages); the shared db 14 without redis-server."""
    server = shutil.which("redis-server")
    if server is None:
        yield str(request.getfixturevalue("redis_url"))
        return
    port = free_port()
    with open(tmp_path / "redis.log", "ab") as log:
        process = subprocess.Popen(
            [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        wait_for(lambda: _pings(client), 10, "private redis-server up")
        yield url
    finally:
        client.close()
        process.terminate()
        process.wait(10)


def _pings(client: redis.Redis) -> bool:
    """True once the server answers PING."""
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.fixture
def open_stack(tmp_path: Path, postgres_url: str, fault_redis_url: str) -> Iterator[Callable[..., FaultStack]]:
    """A function that starts a FaultStack (extra IMPASTO_* env as keywords); stopped at the end."""
    stacks: list[FaultStack] = []

    def _open(workers: int = 1, reconciler: bool = True, **env: str) -> FaultStack:
        stack = FaultStack(tmp_path, postgres_url, fault_redis_url, **env)
        stacks.append(stack)
        return stack.start(workers, reconciler)

    yield _open
    for stack in stacks:
        stack.close()


def resumed_iterations(job: RowMapping) -> int:
    """Iterations the last (successful) run did itself, measured by the worker: speed x run time."""
    return round(job["iterations_per_second"] * job["run_seconds"])


def checkpoint_before(stack: FaultStack, job_id: str, moment: datetime) -> int:
    """The newest snapshot recorded before `moment` (the checkpoint a run claimed then resumes from)."""
    return max((i for i, created in stack.snapshots(job_id) if created <= moment), default=0)


@pytest.fixture(params=["redis", "rabbitmq"])
def broker_env(request: pytest.FixtureRequest, fault_redis_url: str) -> Iterator[dict[str, str]]:
    """Extra environment for a FaultStack: none (Redis is the broker), or RabbitMQ as the broker (a vhost of
    its own) with the stack's Redis carrying only the live events."""
    if request.param == "redis":
        yield {}
        return
    with rabbitmq_vhost() as amqp_url:
        yield {"IMPASTO_BROKER_URL": amqp_url, "IMPASTO_EVENTS_REDIS_URL": fault_redis_url}


def test_killed_worker_job_resumes_from_checkpoint_on_another(
    broker_env: dict[str, str], open_stack: Callable[..., FaultStack], samples: Path
) -> None:
    """kill -9 mid-job: the lease expires, another worker resumes from the last snapshot and succeeds."""
    stack = open_stack(workers=2, **broker_env)
    for name in ("w1", "w2"):
        stack.wait_worker_ready(name)
    iterations = 40
    job_id = stack.submit({"size": 64, "iterations": iterations, "snapshot_every": 5}, samples)
    stack.wait_snapshot(job_id)
    victim = wait_for(lambda: stack.worker_running(job_id), 10, "the job's worker")
    assert victim is not None
    stack.kill(victim)

    job = stack.wait_finished(job_id, timeout=90)
    rows = stack.history(job_id)
    assert job["status"] == "succeeded", (dict(job), rows, stack.logs())
    assert job["attempts"] == 2
    assert [r.status for r in rows] == ["queued", "running", "queued", "running", "succeeded"], rows
    first, expired, second, end = rows[1:]
    assert node_of(first.worker) == f"{victim}@localhost" and first.attempt == 1
    assert expired.worker is None and expired.attempt == 1, "the reconciler hands back the expired lease"
    assert node_of(second.worker) not in (None, f"{victim}@localhost") and second.attempt == 2
    assert end.worker == second.worker and end.attempt == 2
    assert_no_overlapping_runs(rows)

    checkpoint = checkpoint_before(stack, job_id, second.at)
    assert checkpoint >= 5, "the killed run left a checkpoint"
    after_resume = resumed_iterations(job)
    assert 0 < after_resume <= iterations - checkpoint, (after_resume, checkpoint)
    assert job["iteration"] == iterations
    assert_png(stack.final_png(job_id), size=64)
    for iteration, _ in stack.snapshots(job_id):
        assert_png(stack.storage_root / "jobs" / job_id / "snapshots" / f"{iteration:06d}.png", size=64)


def test_redis_flush_loses_no_queued_job(open_stack: Callable[..., FaultStack], samples: Path) -> None:
    """FLUSHDB while 5 jobs wait in Redis: the reconciler sends them again and all 5 succeed."""
    stack = open_stack(workers=0)
    job_ids = [stack.submit(TINY_JOB, samples) for _ in range(5)]
    with stack.redis.pipeline(transaction=True) as flush:  # atomic: no re-send slips in between
        flush.llen(SMALL_QUEUE)
        flush.flushdb()
        flush.llen(SMALL_QUEUE)
        waiting, _, left = flush.execute()
    assert waiting >= 5 and left == 0, "the 5 messages waited in Redis and were flushed"
    stack.start_worker()

    wait_for(
        lambda: all(s in FINISHED for s in stack.statuses(job_ids).values()), 150, f"5 jobs finished\n{stack.logs()}"
    )
    assert set(stack.statuses(job_ids).values()) == {"succeeded"}, stack.logs()
    resent = stack.processes.log("reconciler")
    for job_id in job_ids:
        assert job_id in resent, f"the reconciler never re-sent {job_id}"
        rows = stack.history(job_id)
        assert [r.status for r in rows] == ["queued", "running", "succeeded"], rows
        assert stack.job(job_id)["attempts"] == 1
        assert_png(stack.final_png(job_id), size=48)


def test_a_flushed_broker_is_noticed_within_one_reconciler_pass(
    open_stack: Callable[..., FaultStack], samples: Path
) -> None:
    """requeue_after_s at its default (600 s): FLUSHDB while 3 jobs wait behind a busy worker. The reconciler's next
    pass sees its sentinel gone and re-sends all 3 at once; each runs once. Prints flush -> re-sent -> last running."""
    interval = 2.0
    stack = open_stack(workers=1, IMPASTO_REQUEUE_AFTER_S="600", IMPASTO_RECONCILE_INTERVAL_S=str(interval))
    blocker = stack.submit({"size": 64, "iterations": 5000, "snapshot_every": 50}, samples)
    stack.wait_snapshot(blocker)
    waiting = [stack.submit(TINY_JOB, samples) for _ in range(3)]
    wait_for(lambda: stack.redis.llen(SMALL_QUEUE) == 3, 10, "3 messages waiting behind the running job")
    wait_for(lambda: stack.redis.exists(SENTINEL_KEY), 30, "the reconciler planted its sentinel")
    time.sleep(interval)  # a pass or two with nothing lost: no duplicates
    assert stack.redis.llen(SMALL_QUEUE) == 3, "nothing was lost, so nothing was re-sent"
    with stack.redis.pipeline(transaction=True) as flush:
        flush.flushdb()
        flush.llen(SMALL_QUEUE)
        _, left = flush.execute()
    flushed, flushed_at = time.monotonic(), datetime.now(UTC)
    assert left == 0
    wait_for(lambda: stack.redis.llen(SMALL_QUEUE) == 3, interval + 20, f"re-sent after the flush\n{stack.logs()}")
    resent_seconds = time.monotonic() - flushed
    response = requests.post(
        f"{stack.url}/v1/jobs/{blocker}/cancel", headers={"Authorization": f"Bearer {stack.key}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    wait_for(lambda: all(s in FINISHED for s in stack.statuses(waiting).values()), 150, f"jobs ran\n{stack.logs()}")
    starts = []
    for job_id in waiting:
        rows = stack.history(job_id)
        assert [r.status for r in rows] == ["queued", "running", "succeeded"], (rows, stack.logs())
        starts.append(rows[1].at)
    last_running = (max(starts) - flushed_at).total_seconds()
    print(
        f"\nflush -> all 3 re-sent {resent_seconds:.1f} s (reconciler interval {interval:.0f} s); "
        f"flush -> last queued job running {last_running:.1f} s (after the blocker's cancel, one worker)"
    )
    assert stack.statuses([blocker]) == {blocker: "canceled"}
    assert "broker lost its messages" in stack.processes.log("reconciler")


def test_sigterm_hands_the_job_back_to_the_next_worker(open_stack: Callable[..., FaultStack], samples: Path) -> None:
    """SIGTERM mid-job: the worker checkpoints, hands the job back and exits soon; the next worker finishes it."""
    stack = open_stack(workers=1)
    iterations = 60
    job_id = stack.submit({"size": 64, "iterations": iterations, "snapshot_every": 5}, samples)
    stack.wait_snapshot(job_id)
    assert stack.worker_running(job_id) == "w1"
    worker = stack.process("w1")
    asked = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    worker.wait(60)
    exit_seconds = time.monotonic() - asked
    print(f"\nSIGTERMed worker exited in {exit_seconds:.1f} s (code {worker.returncode})")
    assert exit_seconds < 30, f"the worker took {exit_seconds:.1f} s to exit"
    assert worker.returncode == 0, stack.processes.log("w1")[-3000:]
    handed_back = stack.job(job_id)
    assert handed_back["status"] == "queued" and handed_back["lease_owner"] is None, dict(handed_back)
    assert handed_back["iteration"] < iterations, "it was stopped mid-run"

    stack.start_worker()
    job = stack.wait_finished(job_id, timeout=90)
    rows = stack.history(job_id)
    assert job["status"] == "succeeded", (dict(job), rows, stack.logs())
    assert job["attempts"] == 2
    assert [r.status for r in rows] == ["queued", "running", "queued", "running", "succeeded"], rows
    first, back, second, end = rows[1:]
    assert node_of(first.worker) == "w1@localhost" and back.worker == first.worker, "w1 handed it back itself"
    assert back.attempt == first.attempt == 1
    assert node_of(second.worker) == "w2@localhost" and end.worker == second.worker and end.attempt == 2
    assert_no_overlapping_runs(rows)
    checkpoint = checkpoint_before(stack, job_id, second.at)
    assert checkpoint >= handed_back["iteration"] >= 5, "the hand-back left a checkpoint where it stopped"
    assert 0 < resumed_iterations(job) <= iterations - checkpoint
    assert_png(stack.final_png(job_id), size=64)


def test_duplicate_delivery_runs_the_job_once(open_stack: Callable[..., FaultStack], samples: Path) -> None:
    """The same transfer message published twice more while two workers consume: one run, the rest dropped."""
    stack = open_stack(workers=2)
    for name in ("w1", "w2"):
        stack.wait_worker_ready(name)
    celery = make_celery(get_settings(broker_url=stack.redis_url))
    try:
        job_id = stack.submit({"size": 64, "iterations": 30, "snapshot_every": 5}, samples)
        assert send_transfer(celery, job_id, SMALL_QUEUE)
        assert send_transfer(celery, job_id, SMALL_QUEUE)
    finally:
        celery.close()
    job = stack.wait_finished(job_id, timeout=90)

    def outcomes() -> list[str]:
        """What each consumed delivery returned, from Celery's 'Task ... succeeded in ...: OUTCOME' lines."""
        lines = [line for n in ("w1", "w2") for line in stack.processes.log(n).splitlines()]
        return [
            line.rsplit(": ", 1)[-1] for line in lines if "Task impasto.transfer[" in line and " succeeded in " in line
        ]

    wait_for(lambda: len(outcomes()) >= 3, 30, "all three deliveries consumed")
    rows = stack.history(job_id)
    assert job["status"] == "succeeded", (dict(job), rows, stack.logs())
    assert [r.status for r in rows] == ["queued", "running", "succeeded"], rows
    assert job["attempts"] == 1
    assert outcomes().count("'dropped'") >= 2 and outcomes().count("'succeeded'") == 1, outcomes()
    assert_png(stack.final_png(job_id), size=64)


def test_duplicate_delivered_after_a_kill_records_the_lost_run(
    open_stack: Callable[..., FaultStack], samples: Path
) -> None:
    """A duplicate message outlives its job's killed worker and is taken after the lease expired: one run at a time."""
    # Duplicates are routine (a hand-back's re-send plus the reconciler's, re-sends of long-queued jobs). No
    # reconciler here: the duplicate comes between the lease's expiry and the reconciler's next pass (up to 10 s
    # with the defaults), so the worker's claim, not the reconciler, takes the expired lease over.
    stack = open_stack(workers=1, reconciler=False)
    job_id = stack.submit({"size": 64, "iterations": 40, "snapshot_every": 5}, samples)
    stack.wait_snapshot(job_id)
    celery = make_celery(get_settings(broker_url=stack.redis_url))
    try:
        assert send_transfer(celery, job_id, SMALL_QUEUE)
    finally:
        celery.close()
    assert stack.redis.llen(SMALL_QUEUE) == 1, "the duplicate waits in Redis behind the running job"
    stack.kill("w1")

    def lease_expired() -> bool:
        with stack.engine.connect() as conn:
            query = text("SELECT lease_expires_at < now() FROM jobs WHERE id = :id")
            return bool(conn.execute(query, {"id": job_id}).scalar_one())

    wait_for(lease_expired, 10, "the dead worker's lease expired")
    stack.start_worker()

    job = stack.wait_finished(job_id, timeout=90)
    rows = stack.history(job_id)
    assert job["status"] == "succeeded" and job["attempts"] == 2, (dict(job), rows, stack.logs())
    assert_no_overlapping_runs(rows)
    first, second = [r for r in rows if r.status == "running"]
    assert node_of(first.worker) == "w1@localhost" and node_of(second.worker) == "w2@localhost"
    checkpoint = checkpoint_before(stack, job_id, second.at)
    assert checkpoint >= 5 and 0 < resumed_iterations(job) <= 40 - checkpoint
    assert_png(stack.final_png(job_id), size=64)


def pg_isready() -> bool:
    """True when the local PostgreSQL accepts connections."""
    return subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q"], check=False).returncode == 0


def pg_ctl(action: str) -> subprocess.CompletedProcess[str]:
    """pg_ctlcluster ACTION on the machine's one cluster."""
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    return subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action],
        check=False, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_postgres_restart_during_a_run(open_stack: Callable[..., FaultStack], samples: Path) -> None:
    """PostgreSQL restarted while a job runs: the worker rides it out and the job succeeds."""
    stack = open_stack(workers=1)
    job_id = stack.submit({"size": 64, "iterations": 80, "snapshot_every": 5}, samples)
    stack.wait_snapshot(job_id)
    assert stack.job(job_id)["status"] == "running"
    try:
        restarted = pg_ctl("restart")
        assert restarted.returncode == 0, restarted.stderr
        wait_for(pg_isready, 60, "PostgreSQL back after the restart", interval=0.5)
        job = stack.wait_finished(job_id, timeout=120)
    finally:
        if not pg_isready():
            pg_ctl("start")
            wait_for(pg_isready, 60, "PostgreSQL started again", interval=0.5)
    rows = stack.history(job_id)
    assert job["status"] == "succeeded", (dict(job), rows, stack.logs())
    assert_no_overlapping_runs(rows)
    assert job["iteration"] == 80
    assert_png(stack.final_png(job_id), size=64)


# Loaded by every Python process of a stack whose PYTHONPATH starts with its folder: when the engine's
# module is imported, stylize is replaced by a kill -9 of the process itself, as a CUDA fault or the kernel's
# OOM killer would end it. The API and the reconciler never import the engine, so only workers crash.
ENGINE_CRASH_HOOK = """
import importlib.abc, importlib.util, os, signal, sys

class _CrashingEngine(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "impasto.worker.engine.optimize":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run_module = spec.loader.exec_module

        def exec_module(module):
            run_module(module)
            module.stylize = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)

        spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, _CrashingEngine())
"""


def test_job_whose_engine_crashes_its_process_fails_after_the_cap(
    open_stack: Callable[..., FaultStack], samples: Path, tmp_path: Path
) -> None:
    """The engine kills its own worker every time: after IMPASTO_MAX_ATTEMPTS (default 3) lost runs the job fails
    as worker_lost, instead of killing workers forever. The test restarts each crashed worker, as a supervisor."""
    hook = tmp_path / "engine_crash_hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(ENGINE_CRASH_HOOK)
    stack = open_stack(workers=1, PYTHONPATH=os.pathsep.join([str(hook), str(ROOT)]))
    job_id = stack.submit({"size": 64, "iterations": 60, "snapshot_every": 5}, samples)
    deadline = time.monotonic() + 180
    crashes = 0
    while stack.job(job_id)["status"] not in FINISHED:
        assert time.monotonic() < deadline, f"the job never ended\n{stack.logs()}"
        if stack.alive_workers():
            time.sleep(0.2)
            continue
        crashes += 1
        # As in the test above: a fresh worker once the reconciler has dealt with the dead run's lease.
        wait_for(lambda: stack.job(job_id)["status"] != "running", 30, "the dead worker's lease handled")
        if stack.job(job_id)["status"] not in FINISHED:
            stack.start_worker()

    job = stack.job(job_id)
    rows = stack.history(job_id)
    assert job["status"] == "failed" and job["error_code"] == "worker_lost", (dict(job), rows, stack.logs())
    assert job["attempts"] == job["lost_runs"] == crashes == 3, (dict(job), crashes, rows)
    assert [r.status for r in rows] == ["queued", *["running", "queued"] * 2, "running", "failed"], rows
    assert_no_overlapping_runs(rows)
    assert job["iteration"] == 0 and not stack.final_png(job_id).exists(), "no run got past the engine's start"


@pytest.mark.slow
@pytest.mark.timeout(660)
def test_soak_random_kills_and_a_redis_flush(open_stack: Callable[..., FaultStack], samples: Path) -> None:
    """40 tiny jobs, 2 workers, kill -9 of a random worker every few seconds and one Redis flush: 40/40 succeed."""
    # Kills here are the test's, not the jobs': a high cap keeps an unlucky job from failing as worker_lost.
    stack = open_stack(workers=2, IMPASTO_MAX_ATTEMPTS="50")
    rng = random.Random(20161)
    started = time.monotonic()
    job_ids = [stack.submit(TINY_JOB, samples) for _ in range(40)]
    flushes, mid_job_kills = 0, 0
    # A kill is due every few seconds or every KILL_EVERY_DONE finished jobs, whichever comes first: on a fast machine
    # the 40 jobs finish in under a minute, and pacing by time alone left too few kills to mean anything.
    next_kill, next_kill_done = time.monotonic() + rng.uniform(5, 10), KILL_EVERY_DONE
    deadline = started + 8 * 60
    while True:
        statuses = stack.statuses(job_ids)
        done = sum(s in FINISHED for s in statuses.values())
        if done == len(job_ids):
            break
        if time.monotonic() > deadline:
            pytest.fail(f"soak not done after 8 minutes: {done}/40 finished, {stack.kills} kills\n{stack.logs(1500)}")
        if flushes == 0 and (done >= 10 or time.monotonic() - started > 45):
            stack.redis.flushdb()
            flushes += 1
            print(f"\nflushed Redis with {len(job_ids) - done} jobs unfinished")
        if time.monotonic() >= next_kill or done >= next_kill_done:
            # A worker still starting holds nothing; the fault worth injecting is a kill of one that consumes,
            # mid-job when one is running a job.
            ready = [n for n in stack.alive_workers() if "ready." in stack.processes.log(n)]
            busy = [n for n in ready if n in {stack.worker_running(j) for j, s in statuses.items() if s == "running"}]
            if ready:
                victim = rng.choice(busy or ready)
                mid_job_kills += victim in busy
                stack.kill(victim)
                stack.start_worker()
                next_kill, next_kill_done = time.monotonic() + rng.uniform(5, 10), done + KILL_EVERY_DONE
        time.sleep(0.2)
    wall = time.monotonic() - started

    statuses = stack.statuses(job_ids)
    histories = {job_id: stack.history(job_id) for job_id in job_ids}
    overlapping = {job_id: run_problems(rows) for job_id, rows in histories.items() if run_problems(rows)}
    runs = sum(r.status == "running" for rows in histories.values() for r in rows)
    attempts = [stack.job(job_id)["attempts"] for job_id in job_ids]
    broken = []
    for job_id in job_ids:
        try:
            assert_png(stack.final_png(job_id), size=48)
            for iteration, _ in stack.snapshots(job_id):
                assert_png(stack.storage_root / "jobs" / job_id / "snapshots" / f"{iteration:06d}.png", size=48)
        except AssertionError as exc:
            broken.append(f"{job_id}: {exc}")
    succeeded = sum(s == "succeeded" for s in statuses.values())
    # 'running' right after 'running' would be a run with no end row: a takeover that skipped recording the
    # lost run (silent: its worker was already dead), or two runs at once (concurrent). Both must be 0: an
    # expired lease is ended (queued, with its row) before anyone claims the job.
    silent, concurrent = 0, 0
    for rows in histories.values():
        for before, after in zip(rows, rows[1:], strict=False):
            if before.status == after.status == "running":
                node = node_of(before.worker) or ""
                dead_at = stack.killed_at.get(node.split("@", 1)[0])
                if dead_at is not None and dead_at <= after.at:
                    silent += 1
                else:
                    concurrent += 1
    # attempts counts claims: one per 'running' row, and the job ended on its last attempt.
    miscounted = [
        job_id
        for job_id, count in zip(job_ids, attempts, strict=True)
        if count != sum(r.status == "running" for r in histories[job_id]) or histories[job_id][-1].attempt != count
    ]
    print(
        f"\nsoak: jobs {len(job_ids)}, succeeded {succeeded}, lost {len(job_ids) - succeeded}, "
        f"kills {stack.kills} ({mid_job_kills} mid-job), flushes {flushes}, runs {runs}, "
        f"most attempts {max(attempts)}, duplicated runs {len(overlapping)} (takeovers of a killed run with no end "
        f"row {silent}, runs started while the previous worker lived {concurrent}), broken images {len(broken)}, "
        f"workers started {stack.worker_count}, wall {wall:.0f} s"
    )
    assert succeeded == len(job_ids), {j: s for j, s in statuses.items() if s != "succeeded"}
    assert not overlapping, overlapping
    assert not broken, broken
    assert not miscounted, {job_id: histories[job_id] for job_id in miscounted}
    assert silent == 0 and concurrent == 0, "every run has its end row"
    assert mid_job_kills >= 5 and flushes == 1
