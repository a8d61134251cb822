"""Benchmark: does the delivered 8-bit PNG keep the objective the optimiser reached?

    python -m bench.delivered_gap [--sizes 128,256] [--iterations 100] [--no-record]

For each size, stylize() runs with the default StyleParams (original VGG19, L-BFGS) on the
sample content and style. The optimiser's side is its last total as reported to
Callbacks.on_progress. The delivered side is what a user downloads: Result.image through the
worker's own PNG encoder (impasto.worker.engine.imaging.png_bytes), decoded by Pillow and turned into
pixels by the engine's preprocessing (imaging.open_image, imaging.to_tensor), then scored
with the very Objective instance the engine built for its last stage (same targets, weights,
normalisation and TV term). The reported loss is that Objective's weighted terms at the
accepted point, so both sides share one definition; the script checks this by re-scoring
the final float image and prints the largest difference. Target: |gap| <= 10 %.
"""

from __future__ import annotations

import argparse
import contextlib
import io
from collections.abc import Iterator
from typing import Any

import torch
from PIL import Image

from bench.results import append_result, machine_line
from impasto.worker.engine import Callbacks, Losses, StyleParams, imaging, optimize, stylize
from impasto.worker.engine.imaging import png_bytes
from impasto.worker.engine.objective import Objective

CONTENT, STYLE = "shared/samples/chelsea.jpg", "shared/samples/starry_night.jpg"
TARGET_GAP = 0.10  # the target: delivered objective within 10 % of the optimiser's last


class RecordingObjective(Objective):
    """The engine's Objective, unchanged, also keeping the last pixels it scored."""

    last_pixels: torch.Tensor | None = None

    def __call__(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Score as the engine does; keep a copy of the image (a copy is far cheaper than VGG)."""
        self.last_pixels = pixels.detach().clone()
        return super().__call__(pixels)


@contextlib.contextmanager
def engine_objectives() -> Iterator[list[RecordingObjective]]:
    """While open, stylize() builds RecordingObjectives; yields them, one per stage, in order.

    The engine has no API that hands out its Objective or its float image, so the bench swaps
    the class optimize.py looks up for a recording subclass (and puts it back afterwards).
    """
    built: list[RecordingObjective] = []

    def build(*args: Any, **kwargs: Any) -> RecordingObjective:
        objective = RecordingObjective(*args, **kwargs)
        built.append(objective)
        return objective

    original = optimize.Objective
    setattr(optimize, "Objective", build)  # noqa: B010  # setattr: mypy rejects assigning a function to a class name
    try:
        yield built
    finally:
        setattr(optimize, "Objective", original)  # noqa: B010


class LastLosses(Callbacks):
    """Keeps the losses of the last iteration reported."""

    def __init__(self) -> None:
        self.losses: Losses | None = None

    def on_progress(self, iteration: int, losses: Losses) -> None:
        """Remember the latest."""
        self.losses = losses


def delivered_pixels(image: Image.Image) -> torch.Tensor:
    """The result as a user gets it: PNG bytes as the worker stores them, decoded, preprocessed."""
    with Image.open(io.BytesIO(png_bytes(image))) as decoded:
        return imaging.to_tensor(imaging.open_image(decoded))


def score(objective: Objective, pixels: torch.Tensor) -> Losses:
    """The objective's weighted terms for an RGB 0..255 image, as Losses."""
    with torch.no_grad():
        _, terms = objective(pixels)
    content, style, tv = terms.tolist()
    return Losses(content=content, style=style, tv=tv, total=content + style + tv)


def gap(optimised: float, delivered: float) -> float:
    """Relative change from the optimiser's value to the delivered one."""
    return (delivered - optimised) / optimised if optimised else 0.0


def measure(size: int, iterations: int) -> tuple[Losses, Losses, float, int, float]:
    """(reported, delivered, |reported - float re-score| / reported, pixels out of range, seconds)."""
    params = StyleParams(size=size, iterations=iterations)
    last = LastLosses()
    with engine_objectives() as objectives:
        result = stylize(CONTENT, [STYLE], params, last)
    objective = objectives[-1]  # the last stage's, at full size
    assert last.losses is not None and objective.last_pixels is not None
    final_float = objective.last_pixels  # the last point scored is the accepted one (see CachedEvaluation)
    rescored = score(objective, final_float)
    mismatch = abs(rescored.total - last.losses.total) / last.losses.total
    outside = int(((final_float < 0) | (final_float > 255)).sum())
    return last.losses, score(objective, delivered_pixels(result.image)), mismatch, outside, result.seconds


def main() -> None:
    """Run each size, score both sides with the engine's Objective, print and record the tables."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="128,256")
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--record", action=argparse.BooleanOptionalAction, default=True, help="append to RESULTS.md")
    args = parser.parse_args()
    stylize(CONTENT, [STYLE], StyleParams(size=32, iterations=1))  # load the model outside the timing
    totals = [
        "| size | iterations | run s | optimiser objective | delivered objective | gap % | target met |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    terms = ["| size | term | optimiser | delivered | gap % |", "| --- | --- | --- | --- | --- |"]
    checks, all_met = [], True
    for size in (int(s) for s in args.sizes.split(",")):
        reported, delivered, mismatch, outside, seconds = measure(size, args.iterations)
        total_gap = gap(reported.total, delivered.total)
        met = abs(total_gap) <= TARGET_GAP
        all_met &= met
        totals.append(
            f"| {size} | {args.iterations} | {seconds:.1f} | {reported.total:.5g} | {delivered.total:.5g} "
            f"| {100 * total_gap:+.2f} | {'yes' if met else 'no'} |"
        )
        names = ("content", "style", "tv") if StyleParams().tv_weight > 0 else ("content", "style")
        for name in names:
            ours, theirs = getattr(reported, name), getattr(delivered, name)
            terms.append(f"| {size} | {name} | {ours:.5g} | {theirs:.5g} | {100 * gap(ours, theirs):+.2f} |")
        checks.append(f"{size} px: {mismatch:.1e} relative, {outside} float pixels outside 0..255")
        print(totals[-1], flush=True)
    lines = [
        "Optimiser objective: the last total reported to on_progress. Delivered objective: the same",
        "Objective instance on the PNG the worker stores, decoded with Pillow. Gap = delivered / optimiser - 1.",
        "",
        *totals,
        "",
        *terms,
        "",
        "Definition check, reported loss vs the same Objective on the final float image: " + "; ".join(checks) + ".",
        f"Target: |gap| <= {100 * TARGET_GAP:.0f} % at every size: {'met' if all_met else 'not met'}.",
    ]
    print("\n".join(lines))
    if args.record:
        append_result(
            f"Delivered 8-bit PNG vs the optimiser's last objective, {args.iterations} iterations (L-BFGS, CPU)",
            f"python -m bench.delivered_gap --sizes {args.sizes} --iterations {args.iterations}",
            [machine_line(), "", *lines],
        )


if __name__ == "__main__":
    main()
