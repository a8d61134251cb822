"""Benchmark: does coarse-to-fine reach the single-scale objective sooner at the same iteration budget?

    python -m bench.multiscale [--size 256] [--iterations 100] [--scales 0.5,1.0|auto] [--pyramid-start PX]
                               [--repeats 3] [--no-record]

Two runs of stylize() with the default StyleParams (original VGG19, L-BFGS), one at scales
(1.0,) and one at --scales, the same total iterations split by StyleParams.stage_plan(),
interleaved --repeats times after a warm-up (`--scales auto`: the engine's automatic √2 pyramid,
worker/engine/pyramid.py, from --pyramid-start px, with its own split of the iterations); wall
times are medians. Both delivered PNGs are
scored at full size with one Objective instance, the one the engine built for the
single-scale run (see bench.delivered_gap), so the two numbers share targets and weights.
Time to reach: the loop time (from calling stylize) of the first iteration whose total, as
reported to on_progress, is at most the single-scale run's final reported total; for
coarse-to-fine only iterations of the full-size stage count, since the coarse stages report
an objective against coarse targets.
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench.delivered_gap import CONTENT, STYLE, delivered_pixels, engine_objectives, score
from bench.results import append_result, machine_line
from impasto.worker.engine import Callbacks, Losses, Result, StyleParams, pyramid, stylize
from impasto.worker.engine.objective import Objective


class Trajectory(Callbacks):
    """(iteration, seconds since the run began, reported total) for every iteration."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.points: list[tuple[int, float, float]] = []

    def on_progress(self, iteration: int, losses: Losses) -> None:
        """Record the point; cheap enough not to need excluding from the timing."""
        self.points.append((iteration, time.perf_counter() - self.started, losses.total))


def run(params: StyleParams, device: str = "cpu") -> tuple[Result, Trajectory, Objective]:
    """One stylize() run; its result, trajectory and the full-size stage's Objective."""
    with engine_objectives() as objectives:
        trajectory = Trajectory()
        result = stylize(CONTENT, [STYLE], params, trajectory, device=device)
    return result, trajectory, objectives[-1]


def final_total(result: Result) -> float:
    """The last total the optimiser reported."""
    assert result.losses is not None
    return result.losses.total


def first_reaching(trajectory: Trajectory, params: StyleParams, total: float) -> tuple[int, float] | None:
    """(iteration, seconds) of the first full-size-stage iteration with reported total <= total."""
    _, full_size_first, _ = params.stage_plan()[-1]
    for iteration, seconds, reported in trajectory.points:
        if iteration >= full_size_first and reported <= total:
            return iteration, seconds
    return None


def main() -> None:
    """Run both set-ups interleaved, score them the same way, print and record the table and verdict."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=100, help="total over all stages, the same for both")
    parser.add_argument("--scales", default="0.5,1.0", help="coarse-to-fine fractions of --size ending at 1.0, or auto")
    parser.add_argument("--pyramid-start", type=int, default=None, help="with auto: the coarsest side, px")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved pairs; wall times are medians")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (bench/gpu.sh runs the 1024 px pyramid)")
    parser.add_argument("--record", action=argparse.BooleanOptionalAction, default=True, help="append to RESULTS.md")
    args = parser.parse_args()
    single = StyleParams(size=args.size, iterations=args.iterations)
    if args.scales == "auto":
        if args.pyramid_start is not None:
            pyramid.PYRAMID_START = args.pyramid_start
        multi = StyleParams(size=args.size, iterations=args.iterations, pyramid_above=1).validate()
    else:
        scales = tuple(float(s) for s in args.scales.split(","))
        multi = StyleParams(size=args.size, iterations=args.iterations, scales=scales).validate()
    stylize(CONTENT, [STYLE], StyleParams(size=32, iterations=1), device=args.device)  # load the model untimed
    walls: dict[str, list[float]] = {"single": [], "multi": []}
    reach: dict[str, list[float]] = {"single": [], "multi": []}
    runs: dict[str, tuple[Result, Trajectory, Objective]] = {}
    for _ in range(args.repeats):
        for name, params in (("single", single), ("multi", multi)):
            runs[name] = run(params, args.device)
            walls[name].append(runs[name][0].seconds)
        # The single-scale run is deterministic (content init, CPU), so its final total is the same each repeat.
        target = final_total(runs["single"][0])
        for name, params in (("single", single), ("multi", multi)):
            hit = first_reaching(runs[name][1], params, target)
            if hit is not None:
                reach[name].append(hit[1])
    objective = runs["single"][2]  # full-size targets; the coarse-to-fine run's last stage has the same
    delivered = {name: score(objective, delivered_pixels(runs[name][0].image).to(args.device)) for name in runs}
    rows = [
        "| run | stages (scale: iterations) | wall s (median) | optimiser objective | delivered objective "
        "| content | style | reaches single-scale final at |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, params in (("single", single), ("multi", multi)):
        result, trajectory, _ = runs[name]
        stages = ", ".join(f"{s:g}: {last - first + 1}" for s, first, last in params.stage_plan())
        hit = first_reaching(trajectory, params, target)
        when = "not reached" if hit is None else f"iteration {hit[0]}, {statistics.median(reach[name]):.1f} s"
        if hit is not None and len(reach[name]) < args.repeats:
            when += f" ({len(reach[name])} of {args.repeats} repeats)"
        losses = delivered[name]
        rows.append(
            f"| {'single-scale' if name == 'single' else 'coarse-to-fine'} | {stages} "
            f"| {statistics.median(walls[name]):.1f} | {final_total(result):.5g} | {losses.total:.5g} "
            f"| {losses.content:.5g} | {losses.style:.5g} | {when} |"
        )
    sooner = bool(reach["multi"]) and statistics.median(reach["multi"]) < statistics.median(reach["single"])
    verdict = (
        f"Verdict: coarse-to-fine {args.scales} {'reaches' if sooner else 'does not reach'} the single-scale "
        f"objective sooner at {args.size} px with {args.iterations} iterations"
        + (
            f" ({statistics.median(reach['multi']):.1f} s vs {statistics.median(reach['single']):.1f} s)."
            if reach["multi"]
            else f" (not reached within its {args.iterations} iterations)."
        )
    )
    lines = [
        f"{args.repeats} interleaved pairs; wall s is stylize's loop time. Optimiser objective: the last total",
        "reported to on_progress. Delivered objective: the PNG the worker stores, scored at full size with one",
        "Objective; content and style are its weighted terms. Times to reach: medians over the repeats reaching it.",
        "",
        *rows,
        "",
        f"Wall times per repeat: single {', '.join(f'{w:.1f}' for w in walls['single'])} s; "
        f"coarse-to-fine {', '.join(f'{w:.1f}' for w in walls['multi'])} s.",
        verdict,
    ]
    print("\n".join(lines))
    if args.record:
        append_result(
            f"Coarse-to-fine vs single-scale, {args.size} px x {args.iterations} iterations (L-BFGS, {args.device})",
            f"python -m bench.multiscale --size {args.size} --iterations {args.iterations} "
            f"--scales {args.scales} --repeats {args.repeats} --device {args.device}"
            + (f" --pyramid-start {args.pyramid_start}" if args.pyramid_start else ""),
            [machine_line(), "", *lines],
        )


if __name__ == "__main__":
    main()
