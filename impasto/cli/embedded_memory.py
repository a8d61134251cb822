"""What `impasto up`'s CPU worker may use, so that the API it runs beside accepts only the jobs that
worker can run: a job no worker consumes would wait in its queue for ever.

Without IMPASTO_ENGINE_MEMORY_BUDGET_MB the worker's engine budget is what the largest job the
API would accept needs (shared/size_classes.py's CPU rule), but at least the engine's default and
at most half the machine's memory. Without IMPASTO_MAX_OUTPUT_PIXELS the API's limit is lowered
to what that budget holds. A machine with a GPU is left alone: its worker plans by CUDA memory.
"""

from __future__ import annotations

import os

from impasto.shared.settings import Settings
from impasto.shared.size_classes import (
    CPU_BYTES_PER_PIXEL,
    CPU_FIXED_BYTES,
    DEFAULT_CPU_BUDGET_MB,
    MB,
    pixels_for_cpu_budget,
)

BUDGET_VARIABLE = "IMPASTO_ENGINE_MEMORY_BUDGET_MB"
LIMIT_VARIABLE = "IMPASTO_MAX_OUTPUT_PIXELS"


def machine_memory_bytes() -> int:
    """Physical memory of this machine."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def cpu_worker_memory(env: dict[str, str], settings: Settings, machine_bytes: int) -> dict[str, str]:
    """The budget and output limit to add to the children's environment (what `env` sets stays)."""
    if BUDGET_VARIABLE in env:
        budget_mb = int(env[BUDGET_VARIABLE])
    else:
        needed_mb = -(-(settings.max_output_pixels * CPU_BYTES_PER_PIXEL + CPU_FIXED_BYTES) // MB)
        budget_mb = max(DEFAULT_CPU_BUDGET_MB, min(needed_mb, machine_bytes // 2 // MB))
    added = {BUDGET_VARIABLE: str(budget_mb)}
    if LIMIT_VARIABLE not in env:
        added[LIMIT_VARIABLE] = str(min(settings.max_output_pixels, pixels_for_cpu_budget(budget_mb)))
    return {key: value for key, value in added.items() if key not in env}
