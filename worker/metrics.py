"""A worker process's Prometheus metrics: run times, speed, GPU memory and outcomes, on its own port."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from wsgiref.simple_server import WSGIServer

import torch
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

# Run-time buckets, seconds: a 256 px job on a GPU takes seconds, a 2048 px one on a CPU hours.
RUN_SECONDS_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400)
# Outcomes counted from the start, so a scrape shows 0 rather than nothing for the ones not yet seen.
OUTCOMES = ("succeeded", "failed", "canceled", "handed_back", "dropped", "lease_lost", "error")


class WorkerMetrics:
    """The metrics of one worker process, in their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.run_seconds = Histogram(
            "impasto_worker_job_run_seconds",
            "wall time of one run of a job on this worker, claim to end state, by outcome",
            ["outcome"],
            buckets=RUN_SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.jobs = Counter(
            "impasto_worker_jobs", "runs this worker ended, by outcome", ["outcome"], registry=self.registry
        )
        self.iterations_per_second = Gauge(
            "impasto_worker_iterations_per_second",
            "optimisation speed of the last run that reached the end of its loop",
            registry=self.registry,
        )
        self.peak_gpu_memory = Gauge(
            "impasto_worker_peak_gpu_memory_bytes",
            "torch.cuda.max_memory_allocated during the last run (0 on a CPU worker)",
            registry=self.registry,
        )
        for outcome in OUTCOMES:
            self.jobs.labels(outcome)

    def record_run(self, outcome: str, seconds: float) -> None:
        """Count one run and its wall time."""
        self.jobs.labels(outcome).inc()
        self.run_seconds.labels(outcome).observe(seconds)

    def record_speed(self, iterations_per_second: float | None) -> None:
        """Note the speed of a run that got to the end of its loop."""
        if iterations_per_second is not None:
            self.iterations_per_second.set(iterations_per_second)

    @contextmanager
    def gpu_memory(self, device: str) -> Iterator[None]:
        """Measure the peak GPU memory of what runs inside (nothing on a CPU device)."""
        if not device.startswith("cuda") or not torch.cuda.is_available():
            yield
            return
        torch.cuda.reset_peak_memory_stats(device)
        try:
            yield
        finally:
            self.peak_gpu_memory.set(torch.cuda.max_memory_allocated(device))


@functools.cache
def worker_metrics() -> WorkerMetrics:
    """This process's metrics, made on first use."""
    return WorkerMetrics()


def serve_worker_metrics(port: int, host: str) -> WSGIServer | None:
    """Serve this process's metrics over HTTP on host:port (port 0: off) from a daemon thread; None if not served."""
    if port <= 0:
        return None
    try:
        server, _thread = start_http_server(port, addr=host, registry=worker_metrics().registry)
    except OSError as exc:  # a taken port must not stop a GPU worker from working
        log.error("worker metrics not served on port %d: %s", port, exc)
        return None
    log.info("worker metrics on http://%s:%d/metrics", host, port)
    return server
