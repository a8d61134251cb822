"""Benchmark: the size of L-BFGS's first step (evaluation.first_step_rms) by image size.

    python -m bench.first_step [--sizes 1024,2048] [--steps 0.3,0.2,0.15,0.1,0.03] [--iterations-at 2048]

Two measurements, both deterministic (objective values and evaluation counts, no timing):
- profile: per size, the default objective (chelsea x starry_night, content start) at the content
  and along −g (L-BFGS's first direction) at RMS logit steps; the gradient from an exact tiled
  evaluation (512 px tiles), the values from plain forward passes;
- first iteration: stylize() with iterations=1 at --iterations-at px, evaluations and objective with
  the size rule and with a fixed 0.3 (the rule before it), budget 16 GB (untiled where it fits).
"""

from __future__ import annotations

import argparse

import torch

from bench.results import append_result, machine_line
from impasto.worker.engine import StyleParams, evaluation, imaging, stylize
from impasto.worker.engine.evaluation import first_step_rms, pixels_of
from impasto.worker.engine.objective import Objective
from impasto.worker.engine.optimize import _EDGE
from impasto.worker.engine.tiling import TiledEvaluation
from impasto.worker.engine.vgg import deepest_layer, load_vgg

CONTENT, STYLE = "shared/samples/chelsea.jpg", "shared/samples/starry_night.jpg"


def profile(size: int, steps: list[float]) -> str:
    """One table row: size, f at the content, f at each RMS step along −g, and the rule's step."""
    params = StyleParams().validate(style_count=1)
    model = load_vgg("original", torch.device("cpu"), deepest_layer(params.content_layers + params.style_layers))
    content_image, style_image = imaging.open_image(CONTENT), imaging.open_image(STYLE)
    width, height = imaging.fit_long_side(*content_image.size, size)
    content = imaging.to_tensor(content_image, (width, height))
    style = imaging.to_tensor(style_image, imaging.fit_long_side(*style_image.size, max(width, height)))
    objective = Objective(model, params, content, [style])
    z = torch.logit((content / 255).clamp(_EDGE, 1 - _EDGE)).detach().requires_grad_(True)
    pixels = pixels_of(z)
    total, _, grad = TiledEvaluation(objective, 512)(pixels.detach())
    pixels.backward(grad)
    assert z.grad is not None
    g = z.grad.detach()
    g = g / float(g.pow(2).mean().sqrt())
    with torch.no_grad():
        values = [float(objective(pixels_of(z - step * g))[0]) for step in steps]
    best = steps[values.index(min(values))]
    cells = " | ".join(f"{v:.4g}" for v in values)
    return f"| {width}x{height} | {float(total):.4g} | {cells} | {best:g} | {first_step_rms(0.3, width * height):.3g} |"


def first_iteration(size: int, rule: bool) -> tuple[int, float]:
    """Evaluations and objective after one L-BFGS iteration, with the size rule or a fixed 0.3."""
    saved = evaluation.FIRST_STEP_FULL_PIXELS
    evaluation.FIRST_STEP_FULL_PIXELS = saved if rule else 10**15
    try:
        result = stylize(CONTENT, [STYLE], StyleParams(size=size, iterations=1), memory_budget=16 * 1024**3)
    finally:
        evaluation.FIRST_STEP_FULL_PIXELS = saved
    assert result.losses is not None
    return result.evaluations, result.losses.total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1024,2048")
    parser.add_argument("--steps", default="0.3,0.2,0.15,0.1,0.03")
    parser.add_argument("--iterations-at", type=int, default=2048)
    parser.add_argument("--record", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    steps = [float(s) for s in args.steps.split(",")]
    rows = [
        "| size | objective at the content | "
        + " | ".join(f"step {s:g}" for s in steps)
        + " | best tried | rule's step |",
        "| --- | --- | " + " | ".join("---" for _ in steps) + " | --- | --- |",
    ]
    for size in (int(s) for s in args.sizes.split(",")):
        rows.append(profile(size, steps))
        print(rows[-1], flush=True)
    runs = {name: first_iteration(args.iterations_at, rule) for name, rule in (("rule", True), ("fixed 0.3", False))}
    rows += [
        "",
        f"First L-BFGS iteration at {args.iterations_at} px: "
        + "; ".join(f"{name}: {n} evaluations, objective {total:.5g}" for name, (n, total) in runs.items())
        + ".",
    ]
    print("\n".join(rows))
    if args.record:
        command = (
            f"python -m bench.first_step --sizes {args.sizes} --steps {args.steps} --iterations-at {args.iterations_at}"
        )
        append_result("L-BFGS's first step by image size (CPU)", command, [machine_line(), "", *rows])


if __name__ == "__main__":
    main()
