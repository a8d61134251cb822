"""Scale-out with real processes on loopback: shared S3 storage through the API, size classes routed
to the workers that consume them, worker metrics, and Flower watching workers and tasks."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from impasto.shared.celery_app import make_celery
from impasto.shared.database import make_engine, make_sessionmaker
from impasto.shared.enqueue import enqueue_job
from impasto.shared.job_params import JobParams
from impasto.shared.jobs import UNWATCHED, create_job, request_cancel
from impasto.shared.models import Job
from impasto.shared.settings import Settings, get_settings
from impasto.shared.size_classes import queue_for
from impasto.shared.storage import make_storage, upload_key
from impasto.shared.task_names import LARGE_QUEUE, SMALL_QUEUE
from tests.e2e.conftest import ROOT, Processes, free_port, wait_ready

AWS_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
BUCKET = "impasto-e2e"
FINISHED = ("succeeded", "failed", "canceled")


@pytest.fixture
def s3_endpoint(tmp_path: Path) -> Iterator[str]:
    """moto's standalone S3 server on a loopback port, with an empty bucket."""
    port = free_port()
    with open(tmp_path / "moto.log", "wb") as log:
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(endpoint), 30, "moto_server did not start")
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **_credentials())
        client.create_bucket(Bucket=BUCKET)
        client.close()
        yield endpoint
    finally:
        server.terminate()
        server.wait(10)


def _credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": AWS_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": AWS_ENV["AWS_SECRET_ACCESS_KEY"],
    }


def _answers(url: str) -> bool:
    try:
        requests.get(url, timeout=1)
    except requests.RequestException:
        return False
    return True


def wait_until(condition: Callable[[], object], timeout: float, message: str) -> None:
    """Poll until condition() is truthy."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(message)
        time.sleep(0.2)


def migrate(env: dict[str, str]) -> None:
    """`impasto db upgrade` with this environment."""
    subprocess.run(
        [sys.executable, "-m", "impasto.cli", "db", "upgrade"], env=env, cwd=ROOT, check=True, capture_output=True
    )


def api_session(settings: Settings) -> requests.Session:
    """An HTTP session that sends an API key when this version of the API has keys."""
    session = requests.Session()
    if importlib.util.find_spec("impasto.shared.api_keys") is not None:
        from impasto.shared.api_keys import issue_key

        session.headers["Authorization"] = f"Bearer {issue_key(settings, 'scale-out-e2e')}"
    return session


def descendants(pid: int) -> list[int]:
    """Every live descendant of a process, from /proc."""
    try:
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return children + [d for child in children for d in descendants(child)]


def alive(pid: int) -> bool:
    """True while a process exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def stop_everything(processes: Processes) -> None:
    """Stop the children and whatever they started.

    `impasto api` runs gunicorn as a child process and does not pass SIGTERM on to it
    (impasto/cli/main.py), so stopping it alone would leave gunicorn serving; stop leftovers by pid.
    """
    leftovers = [d for process in processes.children.values() for d in descendants(process.pid)]
    processes.stop_all()
    for pid in leftovers:
        if alive(pid):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for pid in leftovers:
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def worker_metrics(port: int) -> dict[str, float]:
    """A worker's metrics as {'name{label=value}': value}."""
    return scrape(f"http://127.0.0.1:{port}/metrics")


def scrape(url: str) -> dict[str, float]:
    """The Prometheus text at `url` as {'name{label=value}': value}."""
    text = requests.get(url, timeout=5).text
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return values


def no_gpus(tmp_path: Path) -> Path:
    """A folder holding an nvidia-smi that fails as it does on a machine without GPUs."""
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "nvidia-smi").write_text("#!/bin/sh\necho 'No devices were found'\nexit 6\n")
    (folder / "nvidia-smi").chmod(0o755)
    return folder


def test_s3_storage_through_the_api_with_a_supervised_worker(
    tmp_path: Path, postgres_url: str, redis_12: str, s3_endpoint: str, samples: Path
) -> None:
    """API (gunicorn) and `impasto worker --gpus all` (no GPU here: one CPU child) share only S3:
    the output and snapshots come back through the API, every object is in the bucket, none on disk,
    and the worker's metrics port counts the run."""
    metrics_port = free_port()
    env = {
        **os.environ,
        **AWS_ENV,
        "IMPASTO_DATA_DIR": str(tmp_path / "data"),
        "IMPASTO_DATABASE_URL": postgres_url,
        "IMPASTO_BROKER_URL": redis_12,
        "IMPASTO_STORAGE_URL": f"s3://{BUCKET}/e2e",
        "IMPASTO_S3_ENDPOINT_URL": s3_endpoint,
        "IMPASTO_PROGRESS_INTERVAL_S": "0.2",
        "IMPASTO_WORKER_METRICS_PORT": str(metrics_port),
        "IMPASTO_SHUTDOWN_TIMEOUT_S": "20",
        # An nvidia-smi that finds no GPU (as on this machine): `--gpus all` falls back to one CPU worker.
        "PATH": f"{no_gpus(tmp_path)}:{os.environ['PATH']}",
    }
    migrate(env)
    settings = get_settings(data_dir=tmp_path / "data", database_url=postgres_url)
    http = api_session(settings)
    processes = Processes(env, tmp_path)
    port = free_port()
    supervisor = processes.start("worker", "worker", "--gpus", "all")
    processes.start("api", "api", "--port", str(port), "--workers", "1")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url)
        files = [
            ("content", ("chelsea.jpg", (samples / "chelsea.jpg").read_bytes(), "image/jpeg")),
            ("style", ("starry_night.jpg", (samples / "starry_night.jpg").read_bytes(), "image/jpeg")),
        ]
        params = {"size": 64, "iterations": 10, "snapshot_every": 5}
        response = http.post(f"{url}/v1/jobs", files=files, data={"params": json.dumps(params)}, timeout=30)
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        deadline = time.monotonic() + 120
        while (job := http.get(f"{url}/v1/jobs/{job_id}", timeout=10).json())["status"] not in FINISHED:
            assert time.monotonic() < deadline, (job, processes.log("worker")[-3000:])
            time.sleep(0.2)
        assert job["status"] == "succeeded", (job, processes.log("worker")[-3000:])
        assert job["worker"] == f"cpu-{supervisor.pid}@{socket.gethostname()}" and job["metrics"]["device"] == "cpu"
        final = http.get(job["outputs"]["final"], timeout=10)
        assert final.status_code == 200 and max(Image.open(io.BytesIO(final.content)).size) == 64
        assert [s["iteration"] for s in job["outputs"]["intermediates"]] == [5, 10]
        for snapshot in job["outputs"]["intermediates"]:
            response = http.get(snapshot["url"], timeout=10)
            assert response.status_code == 200 and response.headers["Content-Type"] == "image/png"

        client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", **_credentials())
        keys = {o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix="e2e/")["Contents"]}
        client.close()
        assert {f"e2e/jobs/{job_id}/final.png", f"e2e/jobs/{job_id}/snapshots/000005.png"} <= keys
        assert sum(k.startswith("e2e/uploads/") for k in keys) == 2
        assert not (tmp_path / "data" / "storage").exists(), "nothing may be written to local storage"

        metrics = worker_metrics(metrics_port)
        assert metrics["impasto_worker_jobs_total{outcome=succeeded}"] == 1
        assert metrics["impasto_worker_job_run_seconds_count{outcome=succeeded}"] == 1
        assert metrics["impasto_worker_iterations_per_second"] > 0
        assert metrics["impasto_worker_peak_gpu_memory_bytes"] == 0  # a CPU worker
        assert "no GPU found" in processes.log("worker")

        # What the autoscaler and dashboards read from the API once a job has run through.
        scraped = scrape(f"{url}/metrics")
        assert scraped["impasto_broker_up"] == scraped["impasto_database_up"] == 1
        assert scraped["impasto_jobs{status=succeeded}"] == 1 and scraped["impasto_jobs{status=queued}"] == 0
        assert [scraped[f"impasto_queue_depth{{queue={queue}}}"] for queue in (SMALL_QUEUE, LARGE_QUEUE)] == [0, 0]
        assert scraped["impasto_oldest_queued_job_seconds"] == 0
        polls = "impasto_http_request_duration_seconds_count{method=GET,route=/v1/jobs/<job_id>,status=200}"
        assert scraped[polls] >= 1
    finally:
        stop_everything(processes)
        http.close()
    assert supervisor.returncode == 0, processes.log("worker")[-3000:]


def store_samples(storage_url: str, samples: Path) -> list[str]:
    """Store the cat and Starry Night as the API would; returns [content_key, style_key]."""
    storage = make_storage(storage_url)
    keys = []
    for name in ("chelsea.jpg", "starry_night.jpg"):
        data = (samples / name).read_bytes()
        keys.append(upload_key(data, "jpg"))
        storage.put(keys[-1], data)
    return keys


def enqueue_sized_jobs(settings: Settings, samples: Path, sizes: list[int], iterations: int = 4) -> dict[str, str]:
    """Insert a job per size, routed by its output pixels as the API routes it; returns id -> queue."""
    content_key, style_key = store_samples(settings.resolved_storage_url(), samples)
    with Image.open(samples / "chelsea.jpg") as content:
        aspect = content.width / content.height
    engine = make_engine(settings)
    celery = make_celery(settings)
    routed = {}
    try:
        with make_sessionmaker(engine)() as session:
            for size in sizes:
                params = JobParams(size=size, iterations=iterations, snapshot_every=0)
                queue = queue_for(params.pixel_count(aspect), settings)
                assert queue is not None
                values = params.model_dump(mode="json")
                job = create_job(session, params=values, content_key=content_key, style_keys=[style_key], queue=queue)
                session.commit()
                assert enqueue_job(celery, session, job.id, queue)
                routed[job.id] = queue
    finally:
        celery.close()
        engine.dispose()
    return routed


def cancel_job(settings: Settings, job_id: str) -> None:
    """Ask for the job's cancel, as POST /v1/jobs/{id}/cancel does."""
    engine = make_engine(settings)
    try:
        with make_sessionmaker(engine)() as session:
            request_cancel(session, session.get_one(Job, job_id), UNWATCHED)
            session.commit()
    finally:
        engine.dispose()


def job_rows(settings: Settings, ids: list[str]) -> dict[str, Job]:
    """The jobs' rows, by id."""
    engine = make_engine(settings)
    try:
        with make_sessionmaker(engine)() as session:
            return {job.id: job for job in session.query(Job).filter(Job.id.in_(ids))}
    finally:
        engine.dispose()


def wait_finished(settings: Settings, ids: list[str], processes: Processes, timeout: float = 120) -> dict[str, Job]:
    """Poll SQL until every job has ended."""
    deadline = time.monotonic() + timeout
    while True:
        rows = job_rows(settings, ids)
        if all(row.status in FINISHED for row in rows.values()):
            return rows
        logs = {name: processes.log(name)[-2000:] for name in processes.children}
        assert time.monotonic() < deadline, ({i: r.status for i, r in rows.items()}, logs)
        time.sleep(0.3)


def scale_out_env(tmp_path: Path, postgres_url: str, redis_12: str) -> tuple[dict[str, str], Settings]:
    """A shared environment and the same settings in-process: small class up to 32x32 output pixels."""
    env = {
        **os.environ,
        "IMPASTO_DATA_DIR": str(tmp_path / "data"),
        "IMPASTO_DATABASE_URL": postgres_url,
        "IMPASTO_BROKER_URL": redis_12,
        "IMPASTO_STORAGE_URL": f"file://{tmp_path / 'storage'}",
        "IMPASTO_SMALL_JOB_MAX_PIXELS": str(32 * 32),
        "IMPASTO_DEVICE": "cpu",
        "IMPASTO_SHUTDOWN_TIMEOUT_S": "20",
    }
    migrate(env)
    settings = get_settings(
        data_dir=tmp_path / "data",
        database_url=postgres_url,
        broker_url=redis_12,
        storage_url=env["IMPASTO_STORAGE_URL"],
        small_job_max_pixels=32 * 32,
    )
    return env, settings


def test_size_classes_reach_only_the_workers_that_consume_them(
    tmp_path: Path, postgres_url: str, redis_12: str, samples: Path
) -> None:
    """Two worker processes with different names and queues; six jobs of two classes: each class
    runs only on its worker, both work, and each job records who ran it."""
    env, settings = scale_out_env(tmp_path, postgres_url, redis_12)
    processes = Processes(env, tmp_path)
    host = socket.gethostname()
    # The supervised CPU worker holds 32x32: by --max-pixels it consumes the small class only.
    small = processes.start("small", "worker", "--gpus", "cpu", "--max-pixels", str(32 * 32))
    processes.start("large", "worker", "--name", "large@localhost", "--queues", LARGE_QUEUE)
    try:
        routed = enqueue_sized_jobs(settings, samples, [16, 40, 32, 48, 24, 56])
        assert sorted(routed.values()) == sorted([SMALL_QUEUE] * 3 + [LARGE_QUEUE] * 3)
        rows = wait_finished(settings, list(routed), processes)
    finally:
        stop_everything(processes)
    expected_worker = {SMALL_QUEUE: f"cpu-{small.pid}@{host}", LARGE_QUEUE: "large@localhost"}
    for job_id, queue in routed.items():
        assert rows[job_id].status == "succeeded", (rows[job_id].error_message, processes.log(queue))
        assert rows[job_id].worker == expected_worker[queue], (queue, rows[job_id].worker)
    assert "consumes transfer" in processes.log("small") and "transfer.large" not in processes.log("small")


FLOWER_LOGIN = ("ops", "flower-test-password")


def flower_get(url: str, path: str, login: tuple[str, str] | None = FLOWER_LOGIN) -> Any:
    """GET a Flower API path as JSON (None while Flower is not answering)."""
    try:
        response = requests.get(f"{url}{path}", timeout=5, auth=login)
    except requests.RequestException:
        return None
    return response.json() if response.status_code == 200 else None


def flower_task(flower: str, job_id: str, state: str) -> dict[str, Any] | None:
    """The job's task as Flower lists it, once it is in `state`."""
    tasks = flower_get(flower, "/api/tasks") or {}
    return next((t for t in tasks.values() if job_id in str(t.get("args")) and t["state"] == state), None)


def test_flower_sees_the_busy_worker_and_its_task(
    tmp_path: Path, postgres_url: str, redis_12: str, samples: Path
) -> None:
    """`impasto flower` with basic auth on the same Redis: its API refuses without the login; with it, the
    worker running a job is online, answers a refresh, and holds its task STARTED; then the task ends SUCCESS."""
    env, settings = scale_out_env(tmp_path, postgres_url, redis_12)
    flower_port = free_port()
    processes = Processes({**env, "IMPASTO_FLOWER_BASIC_AUTH": ":".join(FLOWER_LOGIN)}, tmp_path)
    processes.start("flower", "flower", "--port", str(flower_port), "--address", "127.0.0.1")
    processes.start("worker", "worker", "--name", "watched@localhost")
    flower = f"http://127.0.0.1:{flower_port}"
    try:
        wait_until(
            lambda: "watched@localhost" in (flower_get(flower, "/api/workers?refresh=1") or {}),
            60,
            f"Flower never listed the worker\n{processes.log('flower')[-2000:]}",
        )
        assert requests.get(f"{flower}/api/workers", timeout=5).status_code == 401
        assert requests.get(f"{flower}/api/workers", timeout=5, auth=("ops", "wrong")).status_code == 401
        (job_id,) = enqueue_sized_jobs(settings, samples, [24], iterations=3000)
        wait_until(lambda: job_rows(settings, [job_id])[job_id].iteration > 0, 60, "the long job never started running")
        # Mid-job: a refresh (a broadcast inspect) gets the busy worker's answer, and its heartbeats keep it online.
        refreshed = flower_get(flower, "/api/workers?refresh=1&workername=watched@localhost") or {}
        active = refreshed.get("watched@localhost", {}).get("active", [])
        assert [job_id in str(t["args"]) for t in active] == [True], refreshed
        time.sleep(5)  # past Flower's heartbeat window: a worker that stopped beating would now show offline
        assert (flower_get(flower, "/api/workers?status=1") or {}).get("watched@localhost") is True
        wait_until(lambda: flower_task(flower, job_id, "STARTED"), 30, "Flower never showed the task STARTED")
        assert flower_task(flower, job_id, "STARTED")["worker"] == "watched@localhost"  # type: ignore[index]
        assert job_rows(settings, [job_id])[job_id].status == "running"

        cancel_job(settings, job_id)
        wait_finished(settings, [job_id], processes)
        wait_until(lambda: flower_task(flower, job_id, "SUCCESS"), 30, "Flower never showed the task as finished")
        task = flower_task(flower, job_id, "SUCCESS")
        assert task is not None and task["name"] == "impasto.transfer" and task["worker"] == "watched@localhost"
    finally:
        stop_everything(processes)
