"""The automatic scale pyramid: coarse-to-fine sizes in steps of √2, and the iterations each gets.

As crowsonkb/style-transfer-pytorch's gen_scales: long sides size, size/√2, size/2, ... down to
no less than PYRAMID_START px. The engine splits the run's iterations: the full-size stage gets
half of them (it sets the result), the coarser stages share the other half equally. A coarse
stage costs (its side / size)² of a full one, so the pyramid's whole cost is about
½ + ½·(mean of those ratios) of a single-scale run's.
"""

from __future__ import annotations

import math

PYRAMID_START = 256  # px: below this VGG19's deep layers see too few positions for the style to mean much
MAX_STAGES = 6


def pyramid_sides(size: int, start: int | None = None, max_stages: int = MAX_STAGES) -> list[int]:
    """Long sides from the coarsest to `size`, each about √2 times the one before; `size` alone if small."""
    start = PYRAMID_START if start is None else start  # read at call time: bench/multiscale.py sets it
    sides = []
    for i in range(max_stages):
        side = round(size / math.sqrt(2) ** i)
        if side < start:
            break
        sides.append(side)
    return sorted(set(sides))


def pyramid_stages(size: int, iterations: int, start: int | None = None) -> list[tuple[float, int]]:
    """(fraction of size, iterations) per stage; the full-size stage last, with half the iterations."""
    sides = pyramid_sides(size, start)
    coarse = sides[:-1]
    if not coarse or iterations < 2 * len(sides):
        return [(1.0, iterations)]
    final = iterations - iterations // 2
    share, extra = divmod(iterations // 2, len(coarse))
    counts = [share + (1 if i < extra else 0) for i in range(len(coarse))]
    return [(side / size, count) for side, count in zip(coarse, counts, strict=True)] + [(1.0, final)]
