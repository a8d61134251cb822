"""Benchmark: which L-BFGS settings reach a given objective soonest (history size, line search)?

    python -m bench.lbfgs_settings [--size 256] [--iterations 100] [--histories 10,25,100] [--repeats 2] [--no-record]

stylize() with the default StyleParams (original VGG19, content init, CPU) and L-BFGS at each
history size with the engine's strong-Wolfe line search, plus the default history without a
line search (fixed steps of lr 1; the engine offers no such switch, so for that run only the bench
puts torch's LBFGS with line_search_fn=None where the engine builds its optimiser). Runs are
interleaved --repeats times; wall times are medians. Target: the final objective of the engine's
default (history 100, strong Wolfe); each run's time to reach it is the loop time of its first
iteration whose reported total is at most that (the same definition as bench.multiscale).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import statistics

from bench.delivered_gap import CONTENT, STYLE
from bench.lbfgs_direction import torch_lbfgs
from bench.multiscale import final_total, first_reaching, run
from bench.results import append_result, machine_line
from impasto.worker.engine import StyleParams, stylize

DEFAULT_HISTORY = StyleParams().lbfgs_history


def main() -> None:
    """Run every setting interleaved; print and record the table and the fastest setting."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--histories", default="10,25,100", help="L-BFGS history sizes, with strong Wolfe")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds; wall times are medians")
    parser.add_argument("--record", action=argparse.BooleanOptionalAction, default=True, help="append to RESULTS.md")
    args = parser.parse_args()
    histories = [int(h) for h in args.histories.split(",")]
    settings = [(f"history {h}, strong Wolfe", h, False) for h in histories]
    settings.append((f"history {DEFAULT_HISTORY}, no line search", DEFAULT_HISTORY, True))
    default_name = f"history {DEFAULT_HISTORY}, strong Wolfe"
    stylize(CONTENT, [STYLE], StyleParams(size=32, iterations=1))  # load the model outside the timing
    walls: dict[str, list[float]] = {name: [] for name, _, _ in settings}
    finals: dict[str, float] = {}
    trajectories = {}
    for _ in range(args.repeats):
        for name, history, fixed_step in settings:
            params = StyleParams(size=args.size, iterations=args.iterations, lbfgs_history=history)
            with torch_lbfgs(line_search_fn=None) if fixed_step else contextlib.nullcontext():
                result, trajectory, _ = run(params)
            walls[name].append(result.seconds)
            finals[name] = final_total(result)
            trajectories[name] = (trajectory, params)
    target = finals.get(default_name, min(finals.values()))
    rows = [
        "| setting | wall s (median) | s per iteration | final objective | reaches the default's final at |",
        "| --- | --- | --- | --- | --- |",
    ]
    reach: dict[str, float] = {}
    for name, _, _ in settings:
        trajectory, params = trajectories[name]
        hit = first_reaching(trajectory, params, target)
        wall = statistics.median(walls[name])
        final = finals[name]
        if hit is not None:
            # The trajectory's seconds are the last repeat's; scale to the median wall time.
            reach[name] = hit[1] * wall / max(trajectory.points[-1][1], 1e-9)
        when = "not reached" if hit is None else f"iteration {hit[0]}, {reach[name]:.1f} s"
        shown = f"{final:.5g}" if math.isfinite(final) else str(final)
        rows.append(f"| {name} | {wall:.1f} | {wall / args.iterations:.2f} | {shown} | {when} |")
    fastest = min(reach, key=reach.__getitem__) if reach else None
    verdict = (
        f"Soonest to the default's final objective ({target:.5g}): {fastest} ({reach[fastest]:.1f} s)."
        if fastest
        else "No setting reached the default's final objective."
    )
    lines = [
        f"{args.size} px, {args.iterations} iterations, {args.repeats} interleaved rounds; wall s is stylize's loop"
        " time; objective: the last total reported to on_progress.",
        "",
        *rows,
        "",
        verdict,
    ]
    print("\n".join(lines))
    if args.record:
        append_result(
            f"L-BFGS settings, {args.size} px x {args.iterations} iterations (CPU)",
            f"python -m bench.lbfgs_settings --size {args.size} --iterations {args.iterations} "
            f"--histories {args.histories} --repeats {args.repeats}",
            [machine_line(), "", *lines],
        )


if __name__ == "__main__":
    main()
