"""Benchmark 4: status polls per second and submit latency of the production API under load.

    python -m bench.api_load [--workers 2,4] [--connections 16] [--duration 15] [--submits 100]

Serves the API as production does (`impasto api`: gunicorn, gthread workers with 64 threads,
access log on) on loopback, with PostgreSQL, Redis and file storage: a throwaway database
(created here, dropped at the end), a Redis database index that must be empty (flushed at the
end) and a temporary folder. No worker runs, so the submitted jobs stay queued.

Per gunicorn worker count:
- polls: wrk (a separate process) sends GET /v1/jobs/{id} for `--duration` s over
  `--connections` keep-alive connections, after a 3 s warm-up; requests/s, p50/p90/p99 and
  errors (non-2xx answers plus socket errors) come from wrk's --latency report;
- submits: `--submits` sequential POST /v1/jobs (a distinct 256 px JPEG content each time, the
  starry_night sample as style) from this process, first on an idle API, then while wrk polls.

The per-key rate limit and active-job cap would throttle the load, so they are raised for the
run (printed with the results). Target (performance issue): >= 500 polls/s, p99 <= 50 ms, 0 errors.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis
import requests
from PIL import Image

from bench.results import append_result, machine_line
from impasto.cli.demo import free_port

SAMPLES = Path("shared/samples")
CONTENT, STYLE = SAMPLES / "chelsea.jpg", SAMPLES / "starry_night.jpg"
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
RATE_LIMIT = "1000000 per minute"  # production default: 600 per minute
MAX_ACTIVE_JOBS = 1_000_000  # production default: 20
TARGET_POLLS_S, TARGET_P99_MS = 500.0, 50.0
WARM_UP_S = 3
JOB_PARAMS = {"size": 64, "iterations": 2}


@dataclass
class WrkResult:
    """What one wrk run reported."""

    requests_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int

    @property
    def errors(self) -> int:
        """Failed requests: non-2xx/3xx answers plus connect, read, write and timeout errors."""
        return self.non_2xx + self.socket_errors


@dataclass
class SubmitResult:
    """Latencies (ms) of sequential submissions and how many failed."""

    latencies_ms: list[float]
    errors: int


def to_ms(value: str, unit: str) -> float:
    """A wrk duration (its units: us, ms, s, m, h) in milliseconds."""
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}[unit]
    return float(value) * scale


def parse_wrk(output: str) -> WrkResult:
    """Requests/s, latency percentiles and errors from `wrk --latency` output."""

    def percentile(name: str) -> float:
        match = re.search(rf"^\s*{name}%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.MULTILINE)
        if match is None:
            raise ValueError(f"no {name}% line in wrk output:\n{output}")
        return to_ms(*match.groups())

    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    if rate is None or total is None:
        raise ValueError(f"unexpected wrk output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return WrkResult(
        requests_s=float(rate.group(1)),
        p50_ms=percentile("50"),
        p90_ms=percentile("90"),
        p99_ms=percentile("99"),
        requests=int(total.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
    )


def wrk_command(url: str, key: str, threads: int, connections: int, duration_s: int) -> list[str]:
    """wrk polling one URL with the Bearer key, reporting the latency distribution."""
    return [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration_s}s", "--latency",
        "-H", f"Authorization: Bearer {key}", url,
    ]  # fmt: skip


def run_wrk(url: str, key: str, threads: int, connections: int, duration_s: int) -> WrkResult:
    """One wrk run to the end."""
    done = subprocess.run(
        wrk_command(url, key, threads, connections, duration_s), capture_output=True, text=True, check=True
    )
    return parse_wrk(done.stdout)


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs together, from /proc/stat."""
    # user nice system idle iowait irq softirq steal (guest time is already in user and nice)
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_fraction(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Share of the machine's CPU time that was busy between two cpu_ticks() readings."""
    return (after[0] - before[0]) / max(1, after[1] - before[1])


# Processes serving the benchmark besides gunicorn: their CPU is not "someone else's".
SERVICE_NAMES = ("wrk", "postgres", "redis-server")


@dataclass(frozen=True)
class ProcessCpu:
    """One process's name, parent and CPU jiffies (user+system), from /proc/PID/stat."""

    name: str
    ppid: int
    ticks: int


def process_snapshot() -> dict[tuple[int, int], ProcessCpu]:
    """Every process by (pid, start time), so a reused pid is a different process."""
    snapshot = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()  # state ppid ... utime(11) stime(12) ... starttime(19)
        ticks = int(fields[11]) + int(fields[12])
        snapshot[(int(entry.name), int(fields[19]))] = ProcessCpu(name, int(fields[1]), ticks)
    return snapshot


def cpu_split(
    before: dict[tuple[int, int], ProcessCpu], after: dict[tuple[int, int], ProcessCpu], gunicorn_pid: int
) -> tuple[float, float]:
    """CPU seconds between two snapshots of (gunicorn arbiter and workers, other processes).

    "Other" leaves out this process, wrk, PostgreSQL and Redis; processes that exited in
    between are missing from both, so it is a lower bound of what others used.
    """
    ticks_per_s = os.sysconf("SC_CLK_TCK")
    gunicorn = others = 0
    for key, process in after.items():
        used = process.ticks - (before[key].ticks if key in before else 0)
        pid = key[0]
        if pid == gunicorn_pid or process.ppid == gunicorn_pid:
            gunicorn += used
        elif pid != os.getpid() and not process.name.startswith(SERVICE_NAMES):
            others += used
    return gunicorn / ticks_per_s, others / ticks_per_s


def percentile_ms(values: list[float], q: int) -> float:
    """The q-th percentile (inclusive method; with few values p99 is near the maximum)."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def content_images(count: int) -> list[bytes]:
    """`count` distinct small JPEGs (256 px chelsea, one pixel differs), so no upload is deduplicated."""
    base = Image.open(CONTENT).convert("RGB")
    base.thumbnail((256, 256))
    images = []
    for index in range(count):
        image = base.copy()
        image.putpixel((0, 0), (index % 256, (index // 256) % 256, 7))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90)
        images.append(buffer.getvalue())
    return images


def submit_many(session: requests.Session, base_url: str, contents: list[bytes], style: bytes) -> SubmitResult:
    """Sequential POST /v1/jobs, one per content image; a non-202 answer or an exception is an error."""
    latencies, errors = [], 0
    for index, content in enumerate(contents):
        files = [("content", (f"content{index}.jpg", content)), ("style", (STYLE.name, style))]
        started = time.perf_counter()
        try:
            response = session.post(
                f"{base_url}/v1/jobs", files=files, data={"params": json.dumps(JOB_PARAMS)}, timeout=30
            )
            ok = response.status_code == 202
        except requests.RequestException:
            ok = False
        latencies.append((time.perf_counter() - started) * 1000)
        errors += not ok
    return SubmitResult(latencies, errors)


class ApiServer:
    """`impasto api` (gunicorn with production settings) in its own process group."""

    def __init__(self, port: int, workers: int, env: dict[str, str], log_path: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        command = [sys.executable, "-m", "impasto.cli", "api", "--host", "127.0.0.1", "--port", str(port)]
        with log_path.open("ab") as log:  # the access log, one line per request, as in production
            self.process = subprocess.Popen(
                [*command, "--workers", str(workers)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: SIGTERM reaches arbiter and workers
            )

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Wait until /readyz answers 200."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the API exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the API was not ready within {timeout_s} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        """The end of the API's log, for error messages."""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM to the process group; SIGKILL after the graceful timeout (20 s) and a margin."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            except ProcessLookupError:
                pass


@dataclass
class ConfigResult:
    """Everything measured for one gunicorn worker count and one connection count."""

    workers: int
    connections: int
    polls: WrkResult
    cpu_ms_per_poll: float
    machine_busy: float
    others_busy: float
    idle_submits: SubmitResult
    loaded_submits: SubmitResult
    polls_during_submits: WrkResult


def measure(
    workers: int, connections: int, args: argparse.Namespace, env: dict[str, str], work_dir: Path, key: str
) -> ConfigResult:
    """Start the API with `workers` processes, poll it with wrk, then time submissions idle and under polling."""
    server = ApiServer(free_port(), workers, env, work_dir / f"api-{workers}w-{connections}c.log")
    try:
        server.wait_ready()
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {key}"
        style = STYLE.read_bytes()
        contents = content_images(2 * args.submits + 3)
        files = [("content", ("content.jpg", contents[0])), ("style", (STYLE.name, style))]
        created = session.post(f"{server.url}/v1/jobs", files=files, data={"params": json.dumps(JOB_PARAMS)})
        if created.status_code != 202:
            raise RuntimeError(f"POST /v1/jobs answered {created.status_code}: {created.text[:300]}")
        job_url = f"{server.url}/v1/jobs/{created.json()['id']}"
        if submit_many(session, server.url, contents[1:3], style).errors:  # warm-up of the submit path
            raise RuntimeError(f"submitting a job failed:\n{server.log_tail()}")
        check = session.get(job_url, timeout=10)
        if check.status_code != 200 or check.json().get("status") != "queued":
            raise RuntimeError(f"GET {job_url} answered {check.status_code}: {check.text[:300]}")

        run_wrk(job_url, key, args.wrk_threads, connections, WARM_UP_S)  # DB pools and threads warm up
        processes_before, ticks_before = process_snapshot(), cpu_ticks()
        polls = run_wrk(job_url, key, args.wrk_threads, connections, args.duration)
        processes_after, ticks_after = process_snapshot(), cpu_ticks()
        gunicorn_s, others_s = cpu_split(processes_before, processes_after, server.process.pid)
        cpu_ms_per_poll = gunicorn_s * 1000 / max(1, polls.requests)
        machine_busy = busy_fraction(ticks_before, ticks_after)
        # share of all CPUs' time that other processes used while wrk ran
        others_busy = others_s * os.sysconf("SC_CLK_TCK") / max(1, ticks_after[1] - ticks_before[1])

        idle_submits = submit_many(session, server.url, contents[3 : 3 + args.submits], style)
        # wrk stops on SIGINT and still prints its report; it runs only while the submissions do.
        wrk = subprocess.Popen(
            wrk_command(job_url, key, args.wrk_threads, connections, 600), stdout=subprocess.PIPE, text=True
        )
        try:
            time.sleep(1.0)  # let wrk open its connections
            loaded_submits = submit_many(session, server.url, contents[3 + args.submits :], style)
        finally:
            wrk.send_signal(signal.SIGINT)
            output, _ = wrk.communicate(timeout=30)
        return ConfigResult(
            workers=workers,
            connections=connections,
            polls=polls,
            cpu_ms_per_poll=cpu_ms_per_poll,
            machine_busy=machine_busy,
            others_busy=others_busy,
            idle_submits=idle_submits,
            loaded_submits=loaded_submits,
            polls_during_submits=parse_wrk(output),
        )
    finally:
        server.stop()


def api_env(work_dir: Path, database_url: str, redis_url: str) -> dict[str, str]:
    """The environment of a benchmarked API: its services, a scratch folder, the limits raised."""
    return {
        **os.environ,
        "IMPASTO_DATABASE_URL": database_url,
        "IMPASTO_BROKER_URL": redis_url,
        "IMPASTO_STORAGE_URL": f"file://{work_dir / 'storage'}",
        "IMPASTO_DATA_DIR": str(work_dir / "data"),
        "IMPASTO_RATE_LIMIT": RATE_LIMIT,
        "IMPASTO_MAX_ACTIVE_JOBS": str(MAX_ACTIVE_JOBS),
        "PROMETHEUS_MULTIPROC_DIR": str(work_dir / "metrics"),
    }


def setup_database(name: str) -> str:
    """Create the throwaway database (dropping a leftover of an earlier run); returns its URL."""
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop_database(name: str) -> None:
    """Drop the throwaway database, closing what still holds it."""
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def cli(env: dict[str, str], *arguments: str) -> str:
    """Run `impasto ARGUMENTS` with `env`; returns its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "impasto.cli", *arguments], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"impasto {' '.join(arguments)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def target_met(result: ConfigResult) -> bool:
    """Whether the poll run reached the issue's target."""
    polls = result.polls
    return polls.requests_s >= TARGET_POLLS_S and polls.p99_ms <= TARGET_P99_MS and polls.errors == 0


def tables(results: list[ConfigResult], submits: int) -> list[str]:
    """The two markdown tables: status polls, and submit latency."""
    rows = [
        "| gunicorn workers x threads | wrk connections | polls/s | p50 ms | p90 ms | p99 ms | errors "
        "| API CPU ms/poll | CPUs busy: all / other processes | target met |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        p = r.polls
        rows.append(
            f"| {r.workers} x 64 | {r.connections} | {p.requests_s:.0f} | {p.p50_ms:.1f} | {p.p90_ms:.1f} "
            f"| {p.p99_ms:.1f} | {p.errors} of {p.requests} | {r.cpu_ms_per_poll:.2f} "
            f"| {r.machine_busy:.0%} / {r.others_busy:.0%} "
            f"| {'yes' if target_met(r) else 'no'} |"
        )
    rows += [
        "",
        "| gunicorn workers | while | submits | p50 ms | p99 ms | max ms | errors | polls/s meanwhile "
        "| poll p99 ms meanwhile |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        for label, s, during in (
            ("idle", r.idle_submits, None),
            (f"wrk polling ({r.connections} conn.)", r.loaded_submits, r.polls_during_submits),
        ):
            meanwhile = f"{during.requests_s:.0f} | {during.p99_ms:.1f} ({during.errors} errors)" if during else "- | -"
            rows.append(
                f"| {r.workers} | {label} | {submits} | {percentile_ms(s.latencies_ms, 50):.1f} "
                f"| {percentile_ms(s.latencies_ms, 99):.1f} | {max(s.latencies_ms):.1f} | {s.errors} | {meanwhile} |"
            )
    return rows


def main() -> None:
    """Set up the services, measure each worker count, print and record the tables, clean up."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="2,4", help="gunicorn worker counts to try, comma-separated")
    parser.add_argument("--connections", default="16", help="wrk connection counts, comma-separated")
    parser.add_argument("--duration", type=int, default=15, help="seconds of each wrk poll run")
    parser.add_argument("--submits", type=int, default=100, help="sequential submissions, idle and under load")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9", help="an empty Redis database index")
    parser.add_argument("--database", default=f"impasto_bench_api_{os.getpid()}", help="throwaway database name")
    args = parser.parse_args()
    worker_counts = [int(n) for n in args.workers.split(",")]
    connection_counts = [int(n) for n in args.connections.split(",")]

    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed; this benchmark needs it as its load generator (apt-get install -y wrk)")
    broker = redis.Redis.from_url(args.redis_url)
    if broker.dbsize():
        sys.exit(f"{args.redis_url} is not empty; it is flushed at the end, so pick an empty index (--redis-url)")

    # How busy the machine is before anything of this benchmark runs (others' tests, builds...).
    load_before = os.getloadavg()[0]
    ticks = cpu_ticks()
    time.sleep(2)
    busy_before = busy_fraction(ticks, cpu_ticks())

    results: list[ConfigResult] = []
    with tempfile.TemporaryDirectory(prefix="impasto-bench-api-") as tmp:
        work_dir = Path(tmp)
        (work_dir / "metrics").mkdir()
        env = api_env(work_dir, setup_database(args.database), args.redis_url)
        try:
            cli(env, "db", "upgrade")
            key = cli(env, "keys", "create", "--name", "bench").strip()
            for workers in worker_counts:
                for connections in connection_counts:
                    print(f"gunicorn {workers} workers, wrk {connections} connections ...", flush=True)
                    results.append(measure(workers, connections, args, env, work_dir, key))
        finally:
            drop_database(args.database)
            broker.flushdb()
            broker.close()

    rows = tables(results, args.submits)
    notes = [
        f"API: `impasto api --workers N` (gunicorn gthread, 64 threads per worker, access log to a file) on "
        f"127.0.0.1; PostgreSQL 127.0.0.1:5432, Redis {args.redis_url}, file storage; no worker runs (jobs stay "
        f"queued). Load: wrk -t{args.wrk_threads} -c<connections> -d{args.duration}s --latency (after a "
        f"{WARM_UP_S} s warm-up) on GET /v1/jobs/{{id}} of a queued job; errors = non-2xx + socket errors.",
        f"Settings raised for the run so they do not throttle it: IMPASTO_RATE_LIMIT='{RATE_LIMIT}' "
        f"(default 600 per minute), IMPASTO_MAX_ACTIVE_JOBS={MAX_ACTIVE_JOBS} (default 20).",
        f"Submits: {args.submits} sequential POST /v1/jobs from the bench process (256 px JPEG content, distinct "
        f"each time; {STYLE.name} style, {STYLE.stat().st_size // 1024} KB), idle and while wrk polls.",
        "API CPU ms/poll: user+system CPU of gunicorn (arbiter and workers) per poll; PostgreSQL, Redis and wrk "
        "share the same CPUs. CPUs busy: share of all CPUs' time during the poll run, in all and in processes "
        "other than gunicorn, wrk, PostgreSQL and Redis (others' tests, builds...).",
        f"Target: >= {TARGET_POLLS_S:.0f} polls/s with p99 <= {TARGET_P99_MS:.0f} ms and 0 errors.",
    ]
    others_peak = max(r.others_busy for r in results)
    if load_before > 1.0 or busy_before > 0.15 or others_peak > 0.10:
        notes.append(
            f"Shared machine: before the benchmark the 1-min load average was {load_before:.2f} and the CPUs were "
            f"{busy_before:.0%} busy; other processes used up to {others_peak:.0%} of the CPUs during a poll run. "
            "The figures may understate an idle machine."
        )
    print("\n".join(rows))
    print()
    print("\n".join(notes))
    command = (
        f"python -m bench.api_load --workers {args.workers} --connections {args.connections} "
        f"--duration {args.duration} --submits {args.submits}"
    )
    append_result(
        "API load: status polls and submit latency (wrk, gunicorn, PostgreSQL + Redis)",
        command,
        [machine_line(), "", *rows, "", *notes],
    )


if __name__ == "__main__":
    main()
