"""Which GPUs this machine has and how much memory each holds, asked of nvidia-smi.

The supervising parent must never initialise CUDA (ARCHITECTURE.md: a CUDA context in a parent
is wasted memory on every GPU, and fatal to a forked child), so this module does not import
torch: nvidia-smi reads NVML and creates no context. (torch.cuda.device_count() would also do,
as it asks NVML first, but importing torch in the parent costs seconds and memory for nothing.)
"""

from __future__ import annotations

import logging
import os
import subprocess
from dataclasses import dataclass

log = logging.getLogger(__name__)

NVIDIA_SMI_TIMEOUT_S = 20.0
MIB = 1024**2


@dataclass(frozen=True)
class Gpu:
    """One GPU as nvidia-smi numbers it (PCI bus order) and its total memory."""

    index: int
    memory_bytes: int | None


def parse_nvidia_smi(output: str) -> list[Gpu]:
    """Parse `nvidia-smi --query-gpu=index,memory.total --format=csv,noheader,nounits` (MiB)."""
    gpus = []
    for line in output.strip().splitlines():
        index, _, memory = (field.strip() for field in line.partition(","))
        gpus.append(Gpu(int(index), int(float(memory)) * MIB if memory.replace(".", "").isdigit() else None))
    return gpus


def detect_gpus() -> list[Gpu]:
    """The GPUs nvidia-smi lists; none when it is missing or fails (a CPU machine)."""
    command = ["nvidia-smi", "--query-gpu=index,memory.total", "--format=csv,noheader,nounits"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_S, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("nvidia-smi: %s", exc)
        return []
    try:
        return parse_nvidia_smi(done.stdout)
    except ValueError:
        log.warning("nvidia-smi printed what this cannot read: %r", done.stdout[:200])
        return []


def visible_indices(environ: dict[str, str]) -> set[int] | None:
    """The indices CUDA_VISIBLE_DEVICES allows this process, if it is set to a list of numbers."""
    value = environ.get("CUDA_VISIBLE_DEVICES")
    if value is None or not all(part.strip().isdigit() for part in value.split(",") if part.strip()):
        return None  # unset, or UUIDs/MIG names: nvidia-smi's list is taken as it is
    return {int(part) for part in value.split(",") if part.strip()}


def choose_gpus(option: str, detected: list[Gpu], environ: dict[str, str] | None = None) -> list[Gpu]:
    """The GPUs `--gpus` names: 'all', a list like '0,2', or 'cpu' (none); [] means one CPU worker."""
    option = option.strip().lower()
    if option == "cpu":
        return []
    if option == "all":
        allowed = visible_indices(dict(os.environ) if environ is None else environ)
        return [g for g in detected if allowed is None or g.index in allowed]
    try:
        wanted = [int(part) for part in option.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--gpus takes all, cpu or GPU indices like 0,1; got {option!r}") from None
    if not wanted or len(set(wanted)) != len(wanted):
        raise ValueError(f"--gpus needs distinct GPU indices; got {option!r}")
    known = {g.index: g for g in detected}
    missing = [i for i in wanted if i not in known]
    if detected and missing:
        raise ValueError(f"no GPU {missing} on this machine; nvidia-smi lists {sorted(known)}")
    # Without nvidia-smi (some containers) the indices are taken on trust, memory unknown.
    return [known.get(i, Gpu(i, None)) for i in wanted]
