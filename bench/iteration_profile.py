"""Benchmark: where the milliseconds of one engine iteration go (manual timers, CPU).

    python -m bench.iteration_profile [--size 256] [--evaluations 3] [--iterations 4] [--threads N]

One evaluation of the engine's objective is taken apart with the engine's own pieces (the
same Objective, model, losses), each timed on its own, repeated --evaluations times (medians):
  sigmoid        z -> 255·σ(z)
  VGG forward    the truncated network to conv5_1, keeping the five style layers and conv4_2
  Grams + loss   Gram matrices, content and style terms (forward)
  loss backward  gradient of the loss with respect to the features (through the Grams)
  VGG backward   from the features' gradients to the pixels
  sigmoid back   from the pixels' gradient to z
Their sum is checked against one whole evaluation as CachedEvaluation (worker/engine/evaluation.py) runs it. Then a real
stylize() (L-BFGS, defaults) gives one iteration's wall time in steady state (between two
on_progress calls, after two warm-up iterations) and its evaluations; the rest of an iteration
(L-BFGS's two-loop recursion and line-search bookkeeping, the engine's loop, the cache check,
Losses and the callbacks) is that wall time minus evaluations × the whole evaluation. The seed's
step is timed alongside (bench.reference_gatys.SeedRun) for scale.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from bench.per_iteration import WARM, Stamps, time_seed
from bench.reference_gatys import seed_vgg
from bench.results import append_result, machine_line
from bench.seed_race import EvalCounter
from bench.seed_score import CONTENT, STYLE
from impasto.worker.engine import StyleParams, imaging, load_vgg, stylize
from impasto.worker.engine.losses import content_loss
from impasto.worker.engine.objective import Objective
from impasto.worker.engine.statistics import feature_moments

_EDGE = 0.5 / 255  # as worker/engine/optimize.py


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """(milliseconds, result) of one call."""
    started = time.perf_counter()
    out = fn()
    return (time.perf_counter() - started) * 1e3, out


def evaluation_parts(size: int) -> dict[str, float]:
    """ms of each part of one evaluation of the default objective at `size`."""
    params = StyleParams(size=size).validate()
    model = load_vgg("original")
    content_image = imaging.open_image(CONTENT)
    dims = imaging.fit_long_side(*content_image.size, size)
    content = imaging.to_tensor(content_image, dims)
    style_image = imaging.open_image(STYLE)
    style = imaging.to_tensor(style_image, imaging.fit_long_side(*style_image.size, size))
    objective = Objective(model, params, content, [style])
    layers = objective.layers
    z = torch.logit((content / 255).clamp(_EDGE, 1 - _EDGE)).requires_grad_(True)
    parts: dict[str, float] = {}
    ms, pixels = timed(lambda: 255 * torch.sigmoid(z))
    parts["sigmoid"] = ms
    assert isinstance(pixels, torch.Tensor)
    leaf = pixels.detach().requires_grad_(True)
    with torch.enable_grad():
        ms, features = timed(lambda: model(leaf, layers, params.pooling))
    parts["VGG forward"] = ms
    assert isinstance(features, dict)
    leaves = {name: f.detach().requires_grad_(True) for name, f in features.items()}

    def loss() -> torch.Tensor:
        c = sum(
            (
                content_loss(leaves[n], objective.content_targets[n], objective.content_energy[n])
                for n in params.content_layers
            ),
            torch.zeros(()),
        )
        s = sum(
            (
                term.weight * term.target(feature_moments(leaves[term.layer], term.mask).normalised())
                for term in objective.style_terms
            ),
            torch.zeros(()),
        )
        return params.content_weight * c + params.style_weight * s  # type: ignore[return-value]

    ms, total = timed(loss)
    parts["Grams + loss"] = ms
    assert isinstance(total, torch.Tensor)
    parts["loss backward (Grams)"], _ = timed(total.backward)
    names = list(features)
    parts["VGG backward"], _ = timed(
        lambda: torch.autograd.backward([features[n] for n in names], [leaves[n].grad for n in names])
    )
    parts["sigmoid backward"], _ = timed(lambda: pixels.backward(leaf.grad))  # type: ignore[union-attr]
    z.grad = None

    def whole() -> None:
        total, _ = objective(255 * torch.sigmoid(z))
        total.backward()
        z.grad = None

    parts["whole evaluation"], _ = timed(whole)
    return parts


def iteration_ms(size: int, iterations: int) -> tuple[float, float]:
    """(ms per L-BFGS iteration in steady state, evaluations per iteration) of stylize with defaults."""
    counter = EvalCounter()
    handle = load_vgg("original").convs["conv1_1"].register_forward_pre_hook(counter)
    try:
        stamps = Stamps(counter)
        stylize(CONTENT, [STYLE], StyleParams(size=size, iterations=WARM + iterations), stamps)
    finally:
        handle.remove()
    (t0, e0), (t1, e1) = stamps.points[WARM], stamps.points[WARM + iterations]
    return (t1 - t0) / iterations * 1e3, (e1 - e0) / iterations


def main() -> None:
    """Time the parts, an iteration and the seed's step, interleaved; print and record the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--evaluations", type=int, default=3, help="repeats of the parts")
    parser.add_argument("--iterations", type=int, default=4, help="timed stylize iterations per repeat")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved iteration/seed timings")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--record", action=argparse.BooleanOptionalAction, default=True, help="append to RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = seed_vgg()
    stylize(CONTENT, [STYLE], StyleParams(size=32, iterations=1))  # warm-up: the engine's model loads
    evaluation_parts(args.size)  # warm-up of the allocator at this size
    runs: list[dict[str, float]] = []
    iterations: list[tuple[float, float]] = []
    seed_steps: list[float] = []
    for index in range(max(args.evaluations, args.repeats)):
        if index < args.evaluations:
            runs.append(evaluation_parts(args.size))
        if index < args.repeats:
            iterations.append(iteration_ms(args.size, args.iterations))
            seed_steps.append(time_seed(args.size, 2, model)[1] * 1e3)
    parts = {name: statistics.median(r[name] for r in runs) for name in runs[0]}
    whole = parts.pop("whole evaluation")
    iteration = statistics.median(i for i, _ in iterations)
    evals = statistics.median(e for _, e in iterations)
    seed = statistics.median(seed_steps)
    rest = iteration - evals * whole
    rows = ["| part | ms | share of an iteration |", "| --- | --- | --- |"]
    for name, ms in parts.items():
        rows.append(
            f"| {name} (× {evals:.2f} evaluations/iteration) | {ms:.1f} | {100 * ms * evals / iteration:.1f} % |"
        )
    rows += [
        f"| sum of the parts, one evaluation | {sum(parts.values()):.1f} | - |",
        f"| whole evaluation, as the engine runs it | {whole:.1f} | {100 * whole * evals / iteration:.1f} % |",
        f"| rest: L-BFGS bookkeeping, loop, cache check, Losses, callbacks | {rest:.1f} "
        f"| {100 * rest / iteration:.1f} % |",
        f"| one L-BFGS iteration (steady state) | {iteration:.1f} | 100 % |",
        f"| the seed's step, for scale | {seed:.1f} | {100 * seed / iteration:.0f} % |",
    ]
    lines = [
        f"{args.size} px, default StyleParams (L-BFGS, conv1_1..conv5_1 + conv4_2), torch threads {args.threads}; "
        f"parts: medians of {args.evaluations}; iteration and seed step: medians of {args.repeats} interleaved "
        "repeats. The machine was loaded by other work while this ran: read the shares, not the ms.",
        "",
        *rows,
    ]
    print("\n".join(lines))
    if args.record:
        append_result(
            f"Where an iteration's time goes, {args.size} px (CPU)",
            f"python -m bench.iteration_profile --size {args.size} --evaluations {args.evaluations} "
            f"--iterations {args.iterations} --repeats {args.repeats} --threads {args.threads}",
            [machine_line(), "", *lines],
        )


if __name__ == "__main__":
    main()
