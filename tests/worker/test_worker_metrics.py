"""A worker's Prometheus metrics: outcomes counted from zero, run times, speed, and its HTTP port."""

from __future__ import annotations

import socket
from pathlib import Path

import requests
from prometheus_client import generate_latest

from impasto.shared.settings import get_settings
from impasto.worker.metrics import OUTCOMES, WorkerMetrics, serve_worker_metrics
from tests.e2e.conftest import free_port


def test_outcomes_start_at_zero_and_count_runs() -> None:
    """Every outcome is exported before it happens; a run adds to its counter and histogram."""
    metrics = WorkerMetrics()
    text = generate_latest(metrics.registry).decode()
    for outcome in OUTCOMES:
        assert f'impasto_worker_jobs_total{{outcome="{outcome}"}} 0.0' in text
    metrics.record_run("succeeded", 12.5)
    metrics.record_run("succeeded", 40.0)
    metrics.record_speed(3.5)
    metrics.record_speed(None)  # a run that never reached the end of its loop keeps the last speed
    sample = metrics.registry.get_sample_value
    assert sample("impasto_worker_jobs_total", {"outcome": "succeeded"}) == 2
    assert sample("impasto_worker_job_run_seconds_count", {"outcome": "succeeded"}) == 2
    assert sample("impasto_worker_job_run_seconds_bucket", {"outcome": "succeeded", "le": "20.0"}) == 1
    assert sample("impasto_worker_iterations_per_second") == 3.5


def test_gpu_memory_is_not_measured_on_a_cpu() -> None:
    """On a CPU device the peak-memory gauge stays 0 and nothing touches CUDA."""
    metrics = WorkerMetrics()
    with metrics.gpu_memory("cpu"):
        pass
    assert metrics.registry.get_sample_value("impasto_worker_peak_gpu_memory_bytes") == 0


def test_serving_is_off_at_port_0_and_survives_a_taken_port() -> None:
    """Port 0 serves nothing; a taken port is logged, not fatal; a free one serves /metrics."""
    assert serve_worker_metrics(0, "127.0.0.1") is None
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert serve_worker_metrics(taken.getsockname()[1], host="127.0.0.1") is None
    port = free_port()
    server = serve_worker_metrics(port, host="127.0.0.1")
    assert server is not None
    try:
        assert "impasto_worker_jobs_total" in requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        server.shutdown()
        server.server_close()


def listening_hosts(port: int) -> set[str]:
    """The IPv4 addresses that listen on `port` in this machine's network namespace (/proc/net/tcp)."""
    hosts = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, _, hex_port = local.partition(":")
        if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
            hosts.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return hosts


def test_metrics_bind_the_address_asked_for() -> None:
    """0.0.0.0 (a pod scraped by its IP) listens on every address; the default setting keeps to loopback."""
    assert get_settings().worker_metrics_host == "127.0.0.1"
    port = free_port()
    server = serve_worker_metrics(port, host="0.0.0.0")
    assert server is not None
    try:
        assert listening_hosts(port) == {"0.0.0.0"}
    finally:
        server.shutdown()
        server.server_close()
