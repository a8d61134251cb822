"""Benchmark 3: the same job through the whole pipeline and through the engine directly.

    python -m bench.queue_overhead [--size 128] [--iterations 200] [--repeats 3] [--production]

The pipeline run is wall time from POST /v1/jobs to the client seeing `succeeded` (API under
gunicorn, a worker process, the broker, SQL and storage), after a warm-up job so the worker
has its model loaded; the engine run is stylize() in this process, also warm. Default: the
embedded stack (SQLite, filesystem broker). --production uses IMPASTO_DATABASE_URL and
IMPASTO_BROKER_URL from the environment (e.g. PostgreSQL and Redis).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.results import append_result, machine_line
from impasto import FINISHED, Client
from impasto.cli.demo import free_port
from impasto.cli.stack import EmbeddedStack
from impasto.worker.engine import StyleParams, stylize

SAMPLES = Path("shared/samples")
POLL_S = 0.2
CONTENT, STYLE = SAMPLES / "chelsea.jpg", SAMPLES / "starry_night.jpg"


def pipeline_seconds(client: Client, params: dict[str, int]) -> float:
    """Submit and poll until succeeded; returns the wall time (late by up to one poll interval).

    Every 200 ms: each poll costs the API a few ms of CPU on the cores the worker computes
    on, so polling much faster would slow the job it measures (at 50 ms: ~600 polls in a
    30 s job).
    """
    started = time.perf_counter()
    job = client.submit(CONTENT, [STYLE], params)
    while job["status"] not in FINISHED:
        time.sleep(POLL_S)
        job = client.get(job["id"])
    assert job["status"] == "succeeded", job
    return time.perf_counter() - started


def met(condition: bool) -> str:
    """A target's verdict as the table prints it."""
    return "met" if condition else "missed"


def main() -> None:
    """Time both and print and record the ratio."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--production", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="engine/pipeline pairs; medians are compared")
    args = parser.parse_args()
    params = {"size": args.size, "iterations": args.iterations, "snapshot_every": 50}
    env = {"IMPASTO_DEVICE": "cpu"}
    if not args.production:
        for name in ("IMPASTO_DATABASE_URL", "IMPASTO_BROKER_URL", "IMPASTO_STORAGE_URL"):
            os.environ.pop(name, None)
    engine_params = StyleParams(size=args.size, iterations=args.iterations, snapshot_every=50)
    engine_runs, pipeline_runs = [], []
    with (
        tempfile.TemporaryDirectory() as data_dir,
        EmbeddedStack(Path(data_dir), free_port(), env=env, quiet=True) as stack,
    ):
        client = Client(stack.url, api_key=stack.api_key)
        pipeline_seconds(client, {"size": 32, "iterations": 2})  # warm-up: the worker loads VGG19
        stylize(CONTENT, [STYLE], StyleParams(size=32, iterations=2))  # warm-up: this process loads it
        # Interleaved, while the stack idles between jobs, so a change in the machine's load
        # touches both sides alike; the medians are compared.
        for _ in range(args.repeats):
            started = time.perf_counter()
            stylize(CONTENT, [STYLE], engine_params)
            engine_runs.append(time.perf_counter() - started)
            pipeline_runs.append(pipeline_seconds(client, params))
    engine, pipeline = statistics.median(engine_runs), statistics.median(pipeline_runs)
    setup = "PostgreSQL + Redis (from env)" if args.production else "embedded (SQLite, filesystem broker)"
    rows = [
        f"Medians of {args.repeats} interleaved runs each; engine runs: "
        + ", ".join(f"{t:.2f}" for t in engine_runs)
        + " s; pipeline runs: "
        + ", ".join(f"{t:.2f}" for t in pipeline_runs)
        + " s.",
        "",
        "| set-up | engine s | pipeline s | ratio | overhead s |",
        "| --- | --- | --- | --- | --- |",
        f"| {setup} | {engine:.2f} | {pipeline:.2f} | {pipeline / engine:.3f}x | {pipeline - engine:.2f} |",
        "",
        f"Targets: pipeline <= 1.10 x engine + 1 s: {met(pipeline <= 1.10 * engine + 1)};"
        f" overhead <= 5 % (on a ~30 s job): {met(pipeline <= 1.05 * engine)}.",
    ]
    print("\n".join(rows))
    flag = " --production" if args.production else ""
    append_result(
        f"Queue overhead, {args.size} px x {args.iterations} iterations",
        f"python -m bench.queue_overhead --size {args.size} --iterations {args.iterations}"
        f" --repeats {args.repeats}{flag}",
        [machine_line(), "", *rows],
    )


if __name__ == "__main__":
    main()
