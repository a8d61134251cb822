"""What `impasto worker --gpus` runs: one worker process per GPU, each with its name, its queues
and an environment that pins it to its GPU before it imports torch."""

from __future__ import annotations

import logging
import sys

from impasto.shared.settings import Settings
from impasto.shared.size_classes import cpu_queues, pixels_for_memory, queues_for_capacity
from impasto.worker.gpus import Gpu
from impasto.worker.supervisor import ChildSpec

log = logging.getLogger(__name__)


def worker_argv(name: str, queues: list[str], loglevel: str) -> list[str]:
    """The command line of one worker process (the single-process `impasto worker`)."""
    return [
        sys.executable, "-m", "impasto.cli", "worker",
        "--name", name, "--queues", ",".join(queues), "--loglevel", loglevel,
    ]  # fmt: skip


def child_env(base: dict[str, str], gpu: Gpu | None, metrics_port: int) -> dict[str, str]:
    """The child's environment: its one GPU (or none), the device, and its own metrics port."""
    env = dict(base)
    # Each child records its own node name on the jobs it runs, not one name shared by all.
    env.pop("IMPASTO_WORKER_NAME", None)
    env["IMPASTO_WORKER_METRICS_PORT"] = str(metrics_port)
    if gpu is None:
        env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU worker must not make a CUDA context on a GPU machine
        env["IMPASTO_DEVICE"] = "cpu"
        return env
    # nvidia-smi numbers GPUs in PCI bus order, CUDA by default fastest first: make them agree.
    env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    env["CUDA_VISIBLE_DEVICES"] = str(gpu.index)
    env["IMPASTO_DEVICE"] = "cuda"  # the one visible GPU, cuda:0 inside the child
    return env


def child_queues(gpu: Gpu | None, max_pixels: int | None, queues: str | None, settings: Settings) -> list[str]:
    """Explicit --queues, else the classes --max-pixels, the GPU's memory or the CPU's engine budget can hold."""
    if queues:
        return [q.strip() for q in queues.split(",") if q.strip()]
    if max_pixels is None and gpu is None:
        return cpu_queues(settings)
    if max_pixels is None and gpu is not None:
        if gpu.memory_bytes is None:
            log.warning("GPU %d: memory unknown; it takes every size class (pass --max-pixels to limit)", gpu.index)
        else:
            max_pixels = pixels_for_memory(gpu.memory_bytes)
    return queues_for_capacity(max_pixels, settings)


def child_specs(
    gpus: list[Gpu],
    settings: Settings,
    base_env: dict[str, str],
    host: str,
    pid: int,
    max_pixels: int | None = None,
    queues: str | None = None,
    loglevel: str = "INFO",
) -> list[ChildSpec]:
    """One spec per GPU; with no GPUs, one CPU worker. Child N serves metrics on port+N.

    Children are named gpu<N>-<pid>@<host> (cpu-<pid>@<host>) after the supervisor's pid: unique on
    the machine even when two supervisors run there, and the same across a child's restarts.
    """
    slots: list[Gpu | None] = list(gpus) or [None]
    specs = []
    for number, gpu in enumerate(slots):
        name = f"gpu{gpu.index}-{pid}@{host}" if gpu is not None else f"cpu-{pid}@{host}"
        port = settings.worker_metrics_port + number if settings.worker_metrics_port > 0 else 0
        child_queue_names = child_queues(gpu, max_pixels, queues, settings)
        log.info("%s consumes %s", name, ",".join(child_queue_names))
        specs.append(ChildSpec(name, worker_argv(name, child_queue_names, loglevel), child_env(base_env, gpu, port)))
    return specs
