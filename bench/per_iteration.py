"""Benchmark 1: seconds per iteration, engine vs the seed-style reference, same process.

    python -m bench.per_iteration [--sizes 128,256,384] [--iterations 10]

Both run Adam (one forward+backward per iteration) on the same images and weights; the table
prints the ratio engine/reference and appends to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import time

import torch

from bench.reference_gatys import caffe, seed_loss, seed_vgg
from bench.results import append_result, machine_line
from worker.engine import StyleParams, imaging, stylize
from worker.engine.vgg import load_vgg

CONTENT, STYLE = "shared/samples/chelsea.jpg", "shared/samples/starry_night.jpg"


def time_reference(size: int, iterations: int) -> float:
    """Seconds per Adam iteration of the reference at `size` (after one warm-up step)."""
    model = seed_vgg()
    content_image = imaging.open_image(CONTENT)
    width, height = imaging.fit_long_side(*content_image.size, size)
    content = caffe(imaging.to_tensor(content_image, (width, height)))
    style_image = imaging.open_image(STYLE)
    style = caffe(imaging.to_tensor(style_image, imaging.fit_long_side(*style_image.size, size)))
    target = content.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([target], lr=0.003)

    def step() -> None:
        optimizer.zero_grad()
        seed_loss(target, content, style, model).backward()
        optimizer.step()

    step()
    started = time.perf_counter()
    for _ in range(iterations):
        step()
    return (time.perf_counter() - started) / iterations


def time_engine(size: int, iterations: int) -> float:
    """Seconds per Adam iteration of the engine at `size` (loop time includes its one-off targets)."""
    load_vgg("original")
    params = StyleParams(iterations=1, size=size, optimizer="adam")
    stylize(CONTENT, [STYLE], params)  # warm-up
    params = StyleParams(iterations=iterations, size=size, optimizer="adam")
    result = stylize(CONTENT, [STYLE], params)
    return result.seconds / iterations


def main() -> None:
    """Run both at each size and print and record the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="128,256,384")
    parser.add_argument("--iterations", type=int, default=10)
    args = parser.parse_args()
    rows = ["| size | reference s/it | engine s/it | engine / reference |", "| --- | --- | --- | --- |"]
    for size in (int(s) for s in args.sizes.split(",")):
        reference = time_reference(size, args.iterations)
        engine = time_engine(size, args.iterations)
        rows.append(f"| {size} | {reference:.3f} | {engine:.3f} | {engine / reference:.2f}x |")
        print(rows[-1], flush=True)
    append_result(
        "Per-iteration time, engine vs seed-style reference (Adam, CPU)",
        f"python -m bench.per_iteration --sizes {args.sizes} --iterations {args.iterations}",
        [machine_line(), "", *rows],
    )


if __name__ == "__main__":
    main()
