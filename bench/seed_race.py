"""Benchmark: the seed's N-step quality, on the seed's own objective, and how soon the engine gets there.

    python -m bench.seed_race [--size 256] [--seed-steps 1000] [--engine-iterations 30] [--repeats 2]
                              [--seed-timed-steps 4] [--variants default,...] [--no-record]

The fair race (issue 17): the engine's objective is set equal to the seed's up to a constant
factor (content weight 1, style weight 1, per-layer style weights 1e6·w_l·(M_l/d_l)·mean(Â_l²)
/ mean(P²), w_l = 1, .75, .2, .2, .2; above ~300 px the content and layer weights are all divided
by one k that keeps them within the engine's bounds), and both get the style image squashed to
the content's shape. Every delivered image is scored with the seed's own definition (bench.seed_score).

The target: the seed's delivered image after --seed-steps, read from bench.seed_final's JSON
(run that once first; it takes long and is not timed). Reached: style <= the seed's and content
<= 1.3 × the seed's.

Times, measured side by side in this process with interleaved repeats (seed, engine variants,
seed, ...), model loading outside both:
- seed: the SeedRun constructor (content features and style Grams, once) + --seed-steps × the
  median seconds of one step (one warm-up step, then --seed-timed-steps timed);
- engine: stylize()'s loop time (its targets included) up to the end of the first iteration
  whose delivered image reaches the target; the image of every iteration is kept through
  on_snapshot and the time spent keeping it is excluded.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from typing import Any

import torch
from PIL import Image

from bench.reference_gatys import SEED_STYLE_LAYER_NAMES, SEED_STYLE_LAYERS, SeedRun, seed_vgg, squashed_style_image
from bench.results import append_result, machine_line
from bench.seed_final import final_path
from bench.seed_score import CONTENT, STYLE, SeedScore, SeedScorer
from impasto.worker.engine import Callbacks, StyleParams, imaging, load_vgg, stylize
from impasto.worker.engine.losses import energy, gram

MAX_ENGINE_WEIGHT = 1e12  # StyleParams.validate()'s bound on every weight

# Engine settings raced, by name: StyleParams fields on top of the race's objective.
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "old": {"lbfgs_first_step": None},  # torch's first step, min(1, 1/|g|₁)·lr
}


def race_params(size: int, iterations: int, device: str = "cpu", **overrides: Any) -> StyleParams:
    """The engine's StyleParams whose objective is the seed's divided by mean(P²)·k (see the module doc).

    k = 1 unless a layer's weight would pass the engine's bound (1e12, reached above ~300 px: the
    weights grow with the positions M_l); then k divides the content weight and every layer weight
    alike, so the largest is 1e12 and the objective keeps its shape.
    """
    model = load_vgg("original", device)
    base = StyleParams(
        size=size,
        iterations=iterations,
        content_weight=1.0,
        style_weight=1.0,
        content_layers=("conv4_2",),
        style_layers=SEED_STYLE_LAYER_NAMES,
        snapshot_every=1,
    )
    content_image = imaging.open_image(CONTENT)
    content = imaging.to_tensor(content_image, imaging.fit_long_side(*content_image.size, size)).to(device)
    style = imaging.to_tensor(squashed_style_image(CONTENT, STYLE, size)).to(device)
    with torch.no_grad():
        p_energy = energy(model(content, ("conv4_2",))["conv4_2"])
        features = model(style, SEED_STYLE_LAYER_NAMES)
    weights = []
    for name, w in zip(SEED_STYLE_LAYER_NAMES, SEED_STYLE_LAYERS.values(), strict=True):
        _, d, h, width = features[name].shape
        a_energy = energy(gram(features[name])[0])
        weights.append(float(1e6 * w * (h * width / d) * a_energy / p_energy))
    k = max(1.0, max(weights) / MAX_ENGINE_WEIGHT)
    return replace(
        base, content_weight=1.0 / k, style_layer_weights=tuple(x / k for x in weights), **overrides
    ).validate()


class Trajectory(Callbacks):
    """Every iteration's delivered image with the loop time at which it was reached (keeping it excluded)."""

    def __init__(self, counter: EvalCounter) -> None:
        self.counter = counter
        self.started = time.perf_counter()
        self.paused = 0.0
        self.points: list[tuple[int, float, int, Image.Image]] = []

    def on_snapshot(self, iteration: int, image: Image.Image) -> None:
        """Record (iteration, seconds so far, evaluations so far, image)."""
        entered = time.perf_counter()
        self.points.append((iteration, entered - self.started - self.paused, self.counter.count, image.copy()))
        self.paused += time.perf_counter() - entered


class EvalCounter:
    """Counts forward passes with grad on (objective evaluations) through a hook on conv1_1."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, module: torch.nn.Module, args: Any) -> None:
        if torch.is_grad_enabled():
            self.count += 1


def run_engine(params: StyleParams, style: Image.Image, device: str = "cpu") -> Trajectory:
    """One stylize() of the race; its trajectory."""
    counter = EvalCounter()
    handle = load_vgg("original", device).convs["conv1_1"].register_forward_pre_hook(counter)
    try:
        trajectory = Trajectory(counter)
        stylize(CONTENT, [style], params, trajectory, device=device)
    finally:
        handle.remove()
    return trajectory


def time_seed(size: int, timed_steps: int, model: torch.nn.Module) -> tuple[float, float]:
    """(setup seconds, median seconds per step) of the seed's loop, one warm-up step first."""
    started = time.perf_counter()
    run = SeedRun(CONTENT, STYLE, size, model)  # type: ignore[arg-type]
    setup = time.perf_counter() - started
    run.step()
    steps = []
    for _ in range(timed_steps):
        started = time.perf_counter()
        run.step()
        steps.append(time.perf_counter() - started)
    return setup, statistics.median(steps)


def first_reaching(scored: list[tuple[int, float, int, SeedScore]], target: SeedScore) -> tuple[int, float, int] | None:
    """(iteration, seconds, evaluations) of the first point that reaches the target."""
    for iteration, seconds, evaluations, score in scored:
        if score.reaches(target):
            return iteration, seconds, evaluations
    return None


def main() -> None:
    """Race the engine's variants against the seed, interleaved; print and record the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed-steps", type=int, default=1000)
    parser.add_argument("--engine-iterations", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed-timed-steps", type=int, default=4)
    parser.add_argument("--variants", default="default", help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--wait", type=float, default=0.0, help="seconds to wait for bench.seed_final's result")
    parser.add_argument("--record", action=argparse.BooleanOptionalAction, default=True, help="append to RESULTS.md")
    args = parser.parse_args()
    scorer = SeedScorer(args.size)
    model = seed_vgg()
    style = squashed_style_image(CONTENT, STYLE, args.size)
    names = args.variants.split(",")
    params = {name: race_params(args.size, args.engine_iterations, **VARIANTS[name]) for name in names}
    stylize(CONTENT, [style], StyleParams(size=32, iterations=1))  # warm-up outside the timing
    seed_times: list[tuple[float, float]] = []
    runs: dict[str, list[list[tuple[int, float, int, SeedScore]]]] = {name: [] for name in names}
    for _ in range(args.repeats):
        seed_times.append(time_seed(args.size, args.seed_timed_steps, model))
        print(f"seed: setup {seed_times[-1][0]:.2f} s, {seed_times[-1][1]:.3f} s/step", flush=True)
        for name in names:
            trajectory = run_engine(params[name], style)
            runs[name].append([(i, s, e, scorer(image)) for i, s, e, image in trajectory.points])
            print(f"{name}: {[(i, round(s, 1), e, sc) for i, s, e, sc in runs[name][-1]]}", flush=True)
    # The target may still be computing (bench.seed_final runs long): the timed runs above do not need it.
    path = final_path(args.size, args.seed_steps)
    deadline = time.monotonic() + args.wait
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(10)
    final = json.loads(path.read_text())
    target = SeedScore(final["delivered"]["content"], final["delivered"]["style"])
    hits: dict[str, list[tuple[int, float, int]]] = {name: [] for name in names}
    finals: dict[str, SeedScore] = {}
    evals: dict[str, int] = {}
    for name in names:
        for scored in runs[name]:
            finals[name], evals[name] = scored[-1][3], scored[-1][2]
            hit = first_reaching(scored, target)
            if hit is not None:
                hits[name].append(hit)
    setup = statistics.median(s for s, _ in seed_times)
    per_step = statistics.median(p for _, p in seed_times)
    seed_seconds = setup + args.seed_steps * per_step
    rows = [
        "| engine variant | settings | evaluations / iteration | reaches seed at iteration | evaluations then "
        "| engine s (median) | seed s (setup + steps × s/step) | ratio | final content | final style |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in names:
        settings = ", ".join(f"{k}={v}" for k, v in VARIANTS[name].items()) or "engine defaults"
        per_iteration = evals[name] / args.engine_iterations
        if hits[name]:
            iteration, _, evaluations = hits[name][-1]
            seconds = statistics.median(h[1] for h in hits[name])
            reach = f"{iteration} | {evaluations} | {seconds:.1f} | {seed_seconds:.0f} | 1/{seed_seconds / seconds:.1f}"
            if len(hits[name]) < args.repeats:
                reach += f" ({len(hits[name])} of {args.repeats} repeats)"
        else:
            reach = f"not in {args.engine_iterations} | - | - | {seed_seconds:.0f} | -"
        rows.append(
            f"| {name} | {settings} | {per_iteration:.2f} | {reach} "
            f"| {finals[name].content:.4g} | {finals[name].style:.4g} |"
        )
    lines = [
        f"Target: the seed's delivered image after {args.seed_steps} steps (`{final['command']}`): content "
        f"{target.content:.4g}, style {target.style:.4g}; reached = style <= that and content <= 1.3 × that.",
        f"Seed time: setup {setup:.2f} s + {args.seed_steps} × {per_step:.3f} s/step (medians of {args.repeats} "
        f"interleaved measurements of {args.seed_timed_steps} steps each, after one warm-up step) "
        f"= {seed_seconds:.0f} s.",
        "Engine time: stylize's loop (targets included) to the end of the first iteration reaching the target; "
        "model loading outside both. The machine was loaded by other work while this ran: the ratio is what holds.",
        "",
        *rows,
    ]
    print("\n".join(lines))
    if args.record:
        append_result(
            f"Seed race at {args.size} px: the seed's {args.seed_steps}-step quality on its own objective (CPU)",
            f"python -m bench.seed_race --size {args.size} --seed-steps {args.seed_steps} --engine-iterations "
            f"{args.engine_iterations} --repeats {args.repeats} --seed-timed-steps {args.seed_timed_steps} "
            f"--variants {args.variants}",
            [machine_line(), "", *lines],
        )


if __name__ == "__main__":
    main()
