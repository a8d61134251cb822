"""What fits in a run's memory budget: whether to evaluate in tiles, and how long L-BFGS's history is.

The rule (one stage of H·W output pixels, fp32, budget B bytes):
  held      = H·W · (HELD_IMAGES · 12 B + the content targets' bytes a pixel)
  untiled   when held + H·W · EVAL_BYTES_PER_PIXEL ≤ ¾·B, else tiles of the largest side T
            (a multiple of 16) whose crop, (T + 2·HALO)² · EVAL_BYTES_PER_PIXEL, fits in ½·(B − held) and
            leaves MIN_HISTORY pairs room
  history   = min(asked, max(MIN_HISTORY, ⌊(B − held − evaluation peak) / (H·W · 24 B)⌋))
An L-BFGS pair is two image-sized fp32 tensors (s and y, 3 channels: 24 B a pixel); with tiling
the evaluation's peak no longer grows with the image, so at large sizes the history is what the
budget buys. bench/lbfgs_memory.py measures what a shorter history costs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from impasto.worker.engine.tiling import ALIGN, HALO, layer_stride

MB = 1024**2
# A CPU run's budget when the caller names none: the worker passes IMPASTO_ENGINE_MEMORY_BUDGET_MB.
# It counts what the run allocates, not the rest of the process (torch, the network, targets'
# passes: ~1.7 GB measured). At 2560 MB a 2048x1362 job peaked at 3.06 GiB in its first iteration
# (tile 560) and its 16 history pairs would add 1.0 GiB: over 4 GiB. 2048 MB plans tile 464 and
# 12 pairs, ~3.6 GiB in all (bench/print_size.py; RESULTS.md, issue 15).
DEFAULT_CPU_BUDGET = 2048 * MB
# Peak growth of one forward and backward to conv5_1 (fp32, max pooling), per pixel of the image
# or tile crop evaluated: measured 1.4-1.6 kB on the CPU at 384-768 px (bench/tiling_memory.py);
# 2 kB leaves room for the allocator's fragmentation.
EVAL_BYTES_PER_PIXEL = 2000
# Image-sized fp32 tensors a stage holds besides the network's activations: z and its gradient,
# the pixels, the evaluation cache's point and gradient, the tiled gradient buffer, L-BFGS's
# direction, previous gradient and the line search's saved point and gradients, Adam's moments.
HELD_IMAGES = 14
IMAGE_BYTES_PER_PIXEL = 12  # 3 channels of fp32
PAIR_BYTES_PER_PIXEL = 2 * IMAGE_BYTES_PER_PIXEL  # one L-BFGS history pair: s and y
MIN_HISTORY = 5
MIN_AUTO_TILE = 128


@dataclass(frozen=True)
class MemoryPlan:
    """How one stage runs within its budget."""

    tile: int  # px; 0: the whole image in one evaluation
    history: int  # L-BFGS pairs kept
    budget: int  # bytes


def device_budget(device: torch.device, cpu_budget: int | None = None) -> int:
    """Bytes a run may use: 90 % of free CUDA memory now, or the CPU budget (or its default)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.9)
    return cpu_budget if cpu_budget is not None else DEFAULT_CPU_BUDGET


def held_bytes(pixels: int, content_layers: tuple[str, ...]) -> int:
    """Bytes a stage holds whatever it evaluates with: image-sized buffers and the content targets."""
    content = sum(_channels(name) * 4 / layer_stride(name) ** 2 for name in content_layers)
    return int(pixels * (HELD_IMAGES * IMAGE_BYTES_PER_PIXEL + content))


def _channels(layer: str) -> int:
    return (64, 128, 256, 512, 512)[int(layer[4]) - 1]


def auto_tile(height: int, width: int, budget: int, held: int) -> int:
    """0 when the whole image's evaluation fits in ¾ of the budget, else the largest tile that fits ½ of the
    rest, and no more than leaves room for MIN_HISTORY pairs (near a worker's limit the tile shrinks first)."""
    if held + height * width * EVAL_BYTES_PER_PIXEL <= 0.75 * budget:
        return 0
    rest = max(0, budget - held)
    room = min(rest / 2, rest - MIN_HISTORY * height * width * PAIR_BYTES_PER_PIXEL)
    crop = int((max(0, room) / EVAL_BYTES_PER_PIXEL) ** 0.5)
    # Below MIN_AUTO_TILE the halo's recomputation would dominate: an over-budget job is better
    # kept off this worker by its size class than crawled through in slivers.
    tile = max(MIN_AUTO_TILE, (crop - 2 * HALO) // ALIGN * ALIGN)
    return 0 if tile >= max(height, width) else tile


def evaluation_bytes(height: int, width: int, tile: int) -> int:
    """Peak bytes of one evaluation: the whole image, or one tile's crop."""
    if not tile:
        return height * width * EVAL_BYTES_PER_PIXEL
    side = tile + 2 * HALO
    return min(height, side) * min(width, side) * EVAL_BYTES_PER_PIXEL


def plan(
    height: int, width: int, budget: int, asked_tile: int | None, asked_history: int, content_layers: tuple[str, ...]
) -> MemoryPlan:
    """The tile (asked for, or chosen) and the L-BFGS history that fit one stage into `budget` bytes."""
    pixels = height * width
    held = held_bytes(pixels, content_layers)
    tile = auto_tile(height, width, budget, held) if asked_tile is None else asked_tile // ALIGN * ALIGN
    if tile and tile >= max(height, width):
        tile = 0  # one tile would be the whole image: evaluate it directly
    free = budget - held - evaluation_bytes(height, width, tile)
    history = min(asked_history, max(MIN_HISTORY, free // (pixels * PAIR_BYTES_PER_PIXEL)))
    return MemoryPlan(tile=tile, history=int(history), budget=budget)


def cpu_budget_from_environment() -> int | None:
    """IMPASTO_ENGINE_MEMORY_BUDGET_MB, for callers with no settings object (the stylize CLI)."""
    value = os.environ.get("IMPASTO_ENGINE_MEMORY_BUDGET_MB")
    return int(value) * MB if value else None
