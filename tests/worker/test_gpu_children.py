"""`impasto worker --gpus`: choosing GPUs, each child's name, queues and environment, and a real run
of the parent with two Celery children against a stand-in nvidia-smi."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from impasto.shared.celery_app import make_celery
from impasto.shared.settings import get_settings
from impasto.shared.size_classes import GB
from impasto.shared.task_names import LARGE_QUEUE, SMALL_QUEUE
from impasto.worker.children import child_specs
from impasto.worker.gpus import Gpu, choose_gpus, parse_nvidia_smi

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024**2
H100, T4 = Gpu(0, 80 * GB), Gpu(1, 16 * GB)


def test_parse_nvidia_smi() -> None:
    """index, memory.total in MiB; MIG slices report no memory."""
    assert parse_nvidia_smi("0, 81559\n1, 15360\n2, [N/A]\n") == [
        Gpu(0, 81559 * MIB),
        Gpu(1, 15360 * MIB),
        Gpu(2, None),
    ]


@pytest.mark.parametrize(
    ("option", "environ", "chosen"),
    [
        ("all", {}, [H100, T4]),
        ("ALL", {"CUDA_VISIBLE_DEVICES": "1"}, [T4]),  # the parent's own restriction is kept
        ("all", {"CUDA_VISIBLE_DEVICES": "GPU-7f3a"}, [H100, T4]),  # UUIDs: nvidia-smi's list as it is
        ("1", {}, [T4]),
        ("1,0", {}, [T4, H100]),
        ("cpu", {}, []),
    ],
)
def test_choose_gpus(option: str, environ: dict[str, str], chosen: list[Gpu]) -> None:
    """all, cpu, or a list of indices."""
    assert choose_gpus(option, [H100, T4], environ) == chosen


@pytest.mark.parametrize("option", ["2", "0,0", "zero", ","])
def test_choose_gpus_refuses(option: str) -> None:
    """Indices the machine lacks, repeats and words are errors."""
    with pytest.raises(ValueError):
        choose_gpus(option, [H100, T4], {})


def test_without_nvidia_smi() -> None:
    """No GPUs listed: 'all' means none (one CPU worker); explicit indices are taken on trust."""
    assert choose_gpus("all", [], {}) == []
    assert choose_gpus("0,1", [], {}) == [Gpu(0, None), Gpu(1, None)]


def test_child_specs_pin_each_gpu_and_pick_queues_from_memory() -> None:
    """gpu<N>-<pid>@host, CUDA_VISIBLE_DEVICES=N before torch loads, metrics port+N, queues by memory."""
    settings = get_settings(worker_metrics_port=9300)
    base = {"PATH": "/bin", "IMPASTO_WORKER_NAME": "shared-name", "CUDA_VISIBLE_DEVICES": "0,1"}
    big, small = child_specs([H100, T4], settings, base, "host-a", 4242)
    assert (big.name, small.name) == ("gpu0-4242@host-a", "gpu1-4242@host-a")
    assert big.argv[1:] == ["-m", "impasto.cli", "worker", "--name", "gpu0-4242@host-a",
                            "--queues", f"{SMALL_QUEUE},{LARGE_QUEUE}", "--loglevel", "INFO"]  # fmt: skip
    assert small.argv[small.argv.index("--queues") + 1] == SMALL_QUEUE  # 16 GB holds ~1.45 M pixels: small only
    for number, child in enumerate((big, small)):
        assert child.env["CUDA_VISIBLE_DEVICES"] == str(number) and child.env["IMPASTO_DEVICE"] == "cuda"
        assert child.env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID" and child.env["PATH"] == "/bin"
        assert child.env["IMPASTO_WORKER_METRICS_PORT"] == str(9300 + number)
        assert "IMPASTO_WORKER_NAME" not in child.env


@pytest.mark.parametrize(
    ("gpus", "max_pixels", "queues", "expected"),
    [
        ([T4], 20_000_000, None, [SMALL_QUEUE, LARGE_QUEUE]),  # --max-pixels past the large class beats memory
        ([H100], 500_000, None, [SMALL_QUEUE]),
        ([H100], None, "special", ["special"]),  # explicit --queues win
        ([Gpu(3, None)], None, None, [SMALL_QUEUE, LARGE_QUEUE]),  # memory unknown: every class, warned
        ([], None, None, [SMALL_QUEUE]),  # the CPU worker at the default 2048 MB budget: ~6.2 M pixels
        ([], 20_000_000, None, [SMALL_QUEUE, LARGE_QUEUE]),  # a CPU worker told it holds more
    ],
)
def test_child_queues(gpus: list[Gpu], max_pixels: int | None, queues: str | None, expected: list[str]) -> None:
    """Which queues each child consumes."""
    (child,) = child_specs(gpus, get_settings(), {}, "h", 1, max_pixels=max_pixels, queues=queues)
    assert child.argv[child.argv.index("--queues") + 1] == ",".join(expected)


def test_cpu_child_hides_gpus_and_has_metrics_off() -> None:
    """No GPUs: one cpu-<pid>@host child that cannot create a CUDA context; port 0 stays off."""
    (child,) = child_specs([], get_settings(), {}, "h", 7)
    assert child.name == "cpu-7@h" and child.env["CUDA_VISIBLE_DEVICES"] == ""
    assert child.env["IMPASTO_DEVICE"] == "cpu" and child.env["IMPASTO_WORKER_METRICS_PORT"] == "0"


def test_the_parent_imports_no_torch() -> None:
    """The CLI and the supervisor load without torch (so the parent can never initialise CUDA)."""
    code = (
        "import sys, impasto.cli.worker, impasto.worker.supervisor, impasto.worker.children, impasto.worker.gpus; "
        "import impasto.cli.main; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def two_free_ports() -> int:
    """A port P such that P and P+1 are both free."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise RuntimeError("no two adjacent free ports")


def child_pids(pid: int) -> list[int]:
    """The live children of a process, from /proc."""
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def environ_of(pid: int) -> dict[str, str]:
    """A process's environment, from /proc."""
    entries = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(e.decode().split("=", 1) for e in entries if b"=" in e)


def maps_torch(pid: int) -> bool:
    """True if the process has libtorch loaded."""
    return "libtorch" in Path(f"/proc/{pid}/maps").read_text()


def test_gpus_all_runs_a_supervised_celery_worker_per_gpu(tmp_path: Path, redis_12: str) -> None:
    """Two GPUs (a stand-in nvidia-smi): two Celery children, each pinned, named, on its queues, with
    its metrics port; the parent loads no torch; SIGTERM stops them all and the parent exits 0."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\nprintf '0, 81559\\n1, 15360\\n'\n")
    (bin_dir / "nvidia-smi").chmod(0o755)
    port = two_free_ports()
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "IMPASTO_DATA_DIR": str(tmp_path / "data"),
        "IMPASTO_BROKER_URL": redis_12,
        "IMPASTO_WORKER_METRICS_PORT": str(port),
        "IMPASTO_SHUTDOWN_TIMEOUT_S": "20",
    }
    env.pop("CUDA_VISIBLE_DEVICES", None)
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        parent = subprocess.Popen(
            [sys.executable, "-m", "impasto.cli", "worker", "--gpus", "all"], env=env, cwd=ROOT, stdout=out, stderr=out
        )
    celery = make_celery(get_settings(broker_url=redis_12, data_dir=tmp_path / "data"))
    try:
        host = socket.gethostname()
        deadline = time.monotonic() + 60
        queues: dict[str, list[str]] = {}
        while len(queues) < 2:
            assert time.monotonic() < deadline and parent.poll() is None, log.read_text()[-3000:]
            answer = celery.control.inspect(timeout=1).active_queues() or {}
            queues = {node: sorted(q["name"] for q in qs) for node, qs in answer.items()}
        gpu0, gpu1 = f"gpu0-{parent.pid}@{host}", f"gpu1-{parent.pid}@{host}"
        assert queues == {gpu0: sorted([SMALL_QUEUE, LARGE_QUEUE]), gpu1: [SMALL_QUEUE]}
        for number in (0, 1):
            text = requests.get(f"http://127.0.0.1:{port + number}/metrics", timeout=5).text
            assert 'impasto_worker_jobs_total{outcome="succeeded"} 0.0' in text
        children = child_pids(parent.pid)
        assert len(children) == 2
        pinned = sorted(environ_of(pid)["CUDA_VISIBLE_DEVICES"] for pid in children)
        assert pinned == ["0", "1"] and all(environ_of(pid)["IMPASTO_DEVICE"] == "cuda" for pid in children)
        assert all(maps_torch(pid) for pid in children) and not maps_torch(parent.pid)
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(30) == 0, log.read_text()[-3000:]
        assert all(not Path(f"/proc/{pid}").exists() for pid in children)
    finally:
        celery.close()
        if parent.poll() is None:
            parent.kill()
            parent.wait()
