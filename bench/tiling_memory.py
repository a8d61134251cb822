"""Benchmark: peak memory growth of one evaluation, per pixel, untiled or in tiles (CPU).

    python -m bench.tiling_memory SIDE TILE      # one process per measurement: max RSS only grows

Builds the default Objective for a SIDE×SIDE random content and a 128 px random style (1 thread),
then measures the growth of the process's max RSS over one forward and backward: untiled
(TILE 0, autograd through Objective) or TiledEvaluation with TILE px tiles. Prints one line; the
growth per pixel of the image (or of the largest crop, for tiles) calibrates
worker/engine/memory.py's EVAL_BYTES_PER_PIXEL.
"""

from __future__ import annotations

import resource
import sys
import time

import torch

from impasto.worker.engine.objective import Objective
from impasto.worker.engine.params import StyleParams
from impasto.worker.engine.tiling import HALO, TiledEvaluation
from impasto.worker.engine.vgg import load_vgg


def main() -> None:
    side, tile = int(sys.argv[1]), int(sys.argv[2])
    torch.set_num_threads(1)
    vgg = load_vgg()
    content = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0)) * 255
    style = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(1)) * 255
    objective = Objective(vgg, StyleParams(), content, [style], tile=tile)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    started = time.perf_counter()
    if tile:
        TiledEvaluation(objective, tile)(content)
    else:
        leaf = content.clone().requires_grad_(True)
        total, _ = objective(leaf)
        total.backward()
    seconds = time.perf_counter() - started
    growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
    crop = min(side, tile + 2 * HALO) if tile else side
    print(
        f"side={side} tile={tile} max RSS before={before / 1024:.0f} MiB growth={growth / 2**20:.0f} MiB "
        f"per pixel evaluated={growth / crop**2:.0f} B evaluation={seconds:.1f} s"
    )


if __name__ == "__main__":
    main()
