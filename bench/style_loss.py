"""Benchmark: the Gram style loss against W2 (Gaussian 2-Wasserstein), time per evaluation and the result.

    python -m bench.style_loss [--size 128] [--iterations 40] [--repeats 5] [--device cpu] [--out docs/...png]

1. Time: one Objective per loss on the same content and style at --size; forward+backward of
   each, interleaved --repeats times after a warm-up; the medians and their ratio (W2 / Gram).
   The ratio is the figure to quote: under load absolute times drift, a ratio from one process less.
2. Result: stylize() with each loss, the same params otherwise (default weights, L-BFGS, content
   init), --iterations at --size; saves content | gram | w2 side by side to --out, and prints
   each run's seconds per iteration and final losses.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from PIL import Image

from impasto.worker.engine import StyleParams, imaging, load_vgg, stylize
from impasto.worker.engine.objective import Objective

CONTENT = Path("shared/samples/chelsea.jpg")
STYLE = Path("shared/samples/starry_night.jpg")


def evaluation_seconds(objective: Objective, pixels: torch.Tensor) -> float:
    """Wall time of one forward and backward pass of the objective."""
    z = pixels.clone().requires_grad_(True)
    started = time.perf_counter()
    total, _ = objective(z)
    total.backward()
    if z.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def time_losses(size: int, repeats: int, device: str) -> dict[str, float]:
    """Median seconds per evaluation for each style loss, interleaved."""
    model = load_vgg("original", device)
    content_image, style_image = imaging.open_image(CONTENT), imaging.open_image(STYLE)
    content = imaging.to_tensor(content_image, imaging.fit_long_side(*content_image.size, size)).to(device)
    style = imaging.to_tensor(style_image, imaging.fit_long_side(*style_image.size, size)).to(device)
    objectives = {kind: Objective(model, StyleParams(style_loss=kind), content, [style]) for kind in ("gram", "w2")}
    times: dict[str, list[float]] = {kind: [] for kind in objectives}
    for objective in objectives.values():  # warm-up
        evaluation_seconds(objective, content)
    for _ in range(repeats):
        for kind, objective in objectives.items():
            times[kind].append(evaluation_seconds(objective, content))
    return {kind: statistics.median(values) for kind, values in times.items()}


def side_by_side(images: list[Image.Image]) -> Image.Image:
    """The images in a row, each scaled to the first's height."""
    height = images[0].height
    scaled = [im.resize((round(im.width * height / im.height), height), Image.Resampling.LANCZOS) for im in images]
    row = Image.new("RGB", (sum(im.width for im in scaled), height), (255, 255, 255))
    x = 0
    for im in scaled:
        row.paste(im, (x, 0))
        x += im.width
    return row


def main() -> None:
    """Run both measurements and print one line each."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("docs/style_loss_gram_w2.png"))
    args = parser.parse_args()
    medians = time_losses(args.size, args.repeats, args.device)
    print(
        f"evaluation at {args.size} px on {args.device}: gram {medians['gram'] * 1000:.0f} ms, "
        f"w2 {medians['w2'] * 1000:.0f} ms, w2/gram {medians['w2'] / medians['gram']:.2f} "
        f"(medians of {args.repeats}, interleaved)"
    )
    results = []
    for kind in ("gram", "w2"):
        params = StyleParams(size=args.size, iterations=args.iterations, style_loss=kind)
        result = stylize(CONTENT, [STYLE], params, device=args.device)
        assert result.losses is not None
        results.append(result.image)
        print(
            f"stylize {kind}: {result.seconds / result.iterations:.3f} s/iteration, {result.evaluations} evaluations, "
            f"content {result.losses.content:.3f}, style {result.losses.style:.3f}"
        )
    content = imaging.open_image(CONTENT)
    content = content.resize(results[0].size, Image.Resampling.LANCZOS)
    side_by_side([content, *results]).save(args.out)
    print(f"saved content | gram | w2 to {args.out}")


if __name__ == "__main__":
    main()
