"""Size classes: jobs go to a queue by the pixels they make the engine hold (output and style
images), and a worker consumes the classes its memory can hold, so a large job never lands on a
GPU that cannot fit it."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

from impasto.shared.job_params import JobParams
from impasto.shared.settings import Settings
from impasto.shared.task_names import LARGE_QUEUE, SMALL_QUEUE

log = logging.getLogger(__name__)

# GPU memory rule: 1 GB of GPU memory holds the optimisation of this many output pixels, after
# RESERVED_GB for the CUDA context, the weights, the allocator and one tile's evaluation. The
# engine evaluates in exact tiles when the whole image would not fit (worker/engine/memory.py),
# so an output pixel costs what the engine holds at full size: ~14 image-sized fp32 buffers and
# the content targets, ~0.2 kB, plus L-BFGS's history, 24 B a pair, which shrinks to fit (at
# least 5 pairs). 1 kB a pixel leaves room for ~30 pairs: 1 M pixels a GB. Calibrate it with the
# workers' peak-GPU-memory metric (bench/gpu.sh measures the largest size one GPU holds).
PIXELS_PER_GB = 1_000_000
RESERVED_GB = 3.0
GB = 1024**3
# A style image is run through the network once, without gradients, before the optimisation
# starts, and only its Gram matrices are kept: measured on the CPU (fp32, up to conv5_1) its
# pass peaks at ~0.55 kB a pixel, against ~6 kB an output pixel holds with L-BFGS's history.
# So style pixels count at one per this many output pixels (8 rather than 11, for headroom).
# The two peaks come one after the other (the style tensors are let go once their Grams are
# made), so a job counts the larger of the two, not their sum.
STYLE_PIXELS_PER_OUTPUT_PIXEL = 8

# CPU memory rule: a CPU worker's engine budget (IMPASTO_ENGINE_MEMORY_BUDGET_MB) holds a job when
# what the tiled engine cannot shrink fits in it: the image-sized buffers and the content targets
# (~200 B an output pixel), the shortest L-BFGS history (5 pairs of 24 B) and one evaluation of the
# smallest automatic tile with its halo ((128 + 2·80)² px at 2 kB). worker/engine/memory.py is the
# rule the engine plans by (this package may not import it); tests/shared/test_size_classes.py
# checks that the two agree. The rest of the process (torch, the network: ~1.7 GB) is not counted.
DEFAULT_CPU_BUDGET_MB = 2048  # the engine's memory.DEFAULT_CPU_BUDGET
CPU_BYTES_PER_PIXEL = 200 + 5 * 24
CPU_FIXED_BYTES = (128 + 2 * 80) ** 2 * 2000
MB = 1024**2


@dataclass(frozen=True)
class JobPixels:
    """The images one job makes the engine hold, in pixels, at its final (largest) scale.

    Label images (masks) are held decoded at their own size for the whole run and resized, like
    the styles, into 0/1 masks without gradients: they count as style pixels do.
    """

    output: int  # the output, and the content image at the same size
    styles: tuple[int, ...]  # each style image at style_scale
    masks: tuple[int, ...] = ()  # each label image as uploaded

    @property
    def counted(self) -> int:
        """What the job weighs against the size classes, in output pixels."""
        return max(self.output, math.ceil((sum(self.styles) + sum(self.masks)) / STYLE_PIXELS_PER_OUTPUT_PIXEL))

    @property
    def styles_dominate(self) -> bool:
        """True when the style images, not the output, set the count (the 422 then names style_scale)."""
        return self.counted > self.output


def fit_long_side(width: int, height: int, long_side: int) -> tuple[int, int]:
    """(width, height) scaled so the longer side is `long_side`, as the engine's imaging does (a test compares)."""
    scale = long_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def job_pixels(
    params: JobParams,
    content: tuple[int, int],
    styles: Sequence[tuple[int, int]],
    masks: Sequence[tuple[int, int]] = (),
) -> JobPixels:
    """The pixels of a job's output, style and label images, as the engine sizes them (each as width, height)."""
    width, height = fit_long_side(*content, max(8, params.size))
    style_pixels = tuple(
        w * h
        for w, h in (
            fit_long_side(*style, max(8, round(max(width, height) * params.style_scale_of(index))))
            for index, style in enumerate(styles)
        )
    )
    return JobPixels(output=width * height, styles=style_pixels, masks=tuple(w * h for w, h in masks))


@dataclass(frozen=True)
class SizeClass:
    """A queue and the most pixels (JobPixels.counted) a job on it may have."""

    name: str
    queue: str
    max_pixels: int


def size_classes(settings: Settings) -> tuple[SizeClass, ...]:
    """The classes, smallest first; the largest ends at the deployment's output limit."""
    return (
        SizeClass("small", SMALL_QUEUE, min(settings.small_job_max_pixels, settings.max_output_pixels)),
        SizeClass("large", LARGE_QUEUE, settings.max_output_pixels),
    )


def queue_for(pixels: int, settings: Settings) -> str | None:
    """The queue of the smallest class that holds `pixels` (JobPixels.counted); None when no class does (answer 422)."""
    for size_class in size_classes(settings):
        if pixels <= size_class.max_pixels:
            return size_class.queue
    return None


def max_job_pixels(settings: Settings) -> int:
    """The most pixels any class takes (for the 422's message)."""
    return max(c.max_pixels for c in size_classes(settings))


def pixels_for_memory(memory_bytes: int) -> int:
    """Output pixels a GPU with this much memory can optimise, by the PIXELS_PER_GB rule."""
    usable_gb = max(0.0, memory_bytes / GB - RESERVED_GB)
    return int(usable_gb * PIXELS_PER_GB)


def pixels_for_cpu_budget(budget_mb: int | None) -> int:
    """Output pixels a CPU worker with this engine budget can run (None: the engine's default budget)."""
    budget = (budget_mb if budget_mb is not None else DEFAULT_CPU_BUDGET_MB) * MB
    return max(0, (budget - CPU_FIXED_BYTES) // CPU_BYTES_PER_PIXEL)


def queues_for_capacity(max_pixels: int | None, settings: Settings) -> list[str]:
    """The queues a worker holding up to `max_pixels` consumes (None: no limit, every class).

    A worker too small for even the smallest class still takes it, with a warning: a job that
    does not fit fails as `out_of_memory`, which is better than small jobs nobody consumes.
    """
    classes = size_classes(settings)
    if max_pixels is None:
        return [c.queue for c in classes]
    fitting = [c.queue for c in classes if c.max_pixels <= max_pixels]
    if not fitting:
        log.warning(
            "this worker holds %d pixels, less than the small class's %d; it takes small jobs anyway",
            max_pixels,
            classes[0].max_pixels,
        )
        return [classes[0].queue]
    return fitting


def cpu_queues(settings: Settings) -> list[str]:
    """The classes a CPU worker's engine budget holds, saying what a larger class would need."""
    holds = pixels_for_cpu_budget(settings.engine_memory_budget_mb)
    queues = queues_for_capacity(holds, settings)
    skipped = [c for c in size_classes(settings) if c.queue not in queues]
    for size_class in skipped:
        needed = -(-(size_class.max_pixels * CPU_BYTES_PER_PIXEL + CPU_FIXED_BYTES) // MB)
        log.warning(
            "this CPU worker's engine budget holds %d output pixels: it leaves the %s class (up to %d) to others; "
            "IMPASTO_ENGINE_MEMORY_BUDGET_MB=%d or more would take it",
            holds,
            size_class.name,
            size_class.max_pixels,
            needed,
        )
    return queues
