"""Benchmark 1: seconds per iteration, engine vs the seed's loop, same process, interleaved.

    python -m bench.per_iteration [--sizes 128,256,384] [--iterations 3] [--repeats 2] [--threads N]

Both sides in-loop, set-up reported separately, model loading outside both:
- seed: bench.reference_gatys.SeedRun, the notebook's loop done faithfully (content features
  and style Grams once, full vgg19().features, Adam lr 0.003 on the normalised image, style
  squashed to the content's shape); set-up = its constructor; per step = the median of
  --iterations steps after one warm-up step;
- engine: stylize() with the default parameters, optimizer "adam" (one forward+backward per
  iteration, as the seed) and "lbfgs" (the default); set-up = the stylize call to the first
  should_stop; per iteration = (time of on_progress(2 + N) − time of on_progress(2)) / N, so
  the first two iterations (L-BFGS's first steps search) are warm-up; for L-BFGS the
  evaluations (forward+backward passes) in that window are counted too.
Each repeat runs seed, engine Adam, engine L-BFGS in turn; the tables show medians.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch

from bench.reference_gatys import SeedRun, seed_vgg
from bench.results import append_result, machine_line
from bench.seed_race import EvalCounter
from bench.seed_score import CONTENT, STYLE
from impasto.worker.engine import Callbacks, Losses, StyleParams, load_vgg, stylize

WARM = 2  # engine iterations before the timed window


class Stamps(Callbacks):
    """The time the set-up ended and the time of every on_progress, with evaluations so far."""

    def __init__(self, counter: EvalCounter) -> None:
        self.counter = counter
        self.started = time.perf_counter()
        self.setup_done: float | None = None
        self.points: dict[int, tuple[float, int]] = {}

    def should_stop(self) -> bool:
        """The first call marks the end of set-up (images, content targets, style Grams)."""
        if self.setup_done is None:
            self.setup_done = time.perf_counter()
        return False

    def on_progress(self, iteration: int, losses: Losses) -> None:
        """Stamp the iteration."""
        self.points[iteration] = (time.perf_counter(), self.counter.count)


def time_engine(size: int, iterations: int, optimizer: str) -> tuple[float, float, float]:
    """(set-up s, s per iteration, evaluations per iteration) of stylize in the timed window."""
    counter = EvalCounter()
    handle = load_vgg("original").convs["conv1_1"].register_forward_pre_hook(counter)
    try:
        stamps = Stamps(counter)
        stylize(CONTENT, [STYLE], StyleParams(size=size, iterations=WARM + iterations, optimizer=optimizer), stamps)
    finally:
        handle.remove()
    assert stamps.setup_done is not None
    (t0, e0), (t1, e1) = stamps.points[WARM], stamps.points[WARM + iterations]
    return stamps.setup_done - stamps.started, (t1 - t0) / iterations, (e1 - e0) / iterations


def time_seed(size: int, iterations: int, model: Any) -> tuple[float, float]:
    """(set-up s, median s per step) of the seed's loop, after one warm-up step."""
    started = time.perf_counter()
    run = SeedRun(CONTENT, STYLE, size, model)
    setup = time.perf_counter() - started
    run.step()
    steps = []
    for _ in range(iterations):
        started = time.perf_counter()
        run.step()
        steps.append(time.perf_counter() - started)
    return setup, statistics.median(steps)


def _ratios(ratios: list[float]) -> str:
    """The median ratio, then each repeat's."""
    return f"{statistics.median(ratios):.2f}x ({', '.join(f'{r:.2f}' for r in ratios)})"


def main() -> None:
    """Run the three interleaved at each size; print and record the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="128,256,384")
    parser.add_argument("--iterations", type=int, default=3, help="timed steps per side per repeat")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--record", action=argparse.BooleanOptionalAction, default=True, help="append to RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = seed_vgg()
    stylize(CONTENT, [STYLE], StyleParams(size=32, iterations=1))  # warm-up: the engine's model loads
    rows = [
        "| size | seed set-up s | seed s/step | engine set-up s | engine Adam s/it | Adam / seed "
        "| engine L-BFGS s/it | evaluations/it | L-BFGS / seed | L-BFGS s/evaluation / seed s/step |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for size in (int(s) for s in args.sizes.split(",")):
        seed, adam, lbfgs = [], [], []
        for _ in range(args.repeats):
            seed.append(time_seed(size, args.iterations, model))
            adam.append(time_engine(size, args.iterations, "adam"))
            lbfgs.append(time_engine(size, args.iterations, "lbfgs"))
            print(f"{size}: seed {seed[-1]}, adam {adam[-1]}, lbfgs {lbfgs[-1]}", flush=True)
        seed_setup, seed_step = (statistics.median(s[i] for s in seed) for i in (0, 1))
        setup = statistics.median(a[0] for a in adam + lbfgs)
        adam_it = statistics.median(a[1] for a in adam)
        lbfgs_it = statistics.median(b[1] for b in lbfgs)
        evals = statistics.median(b[2] for b in lbfgs)
        # Ratios within each repeat, then their median: the load moves between repeats, not within one.
        adam_ratios = [a[1] / s[1] for a, s in zip(adam, seed, strict=True)]
        lbfgs_ratios = [b[1] / s[1] for b, s in zip(lbfgs, seed, strict=True)]
        eval_ratios = [b[1] / b[2] / s[1] for b, s in zip(lbfgs, seed, strict=True)]
        rows.append(
            f"| {size} | {seed_setup:.2f} | {seed_step:.3f} | {setup:.2f} | {adam_it:.3f} | {_ratios(adam_ratios)} "
            f"| {lbfgs_it:.3f} | {evals:.2f} | {_ratios(lbfgs_ratios)} | {_ratios(eval_ratios)} |"
        )
        print(rows[-1], flush=True)
    lines = [
        f"{args.repeats} interleaved repeats (seed, engine Adam, engine L-BFGS) of {args.iterations} timed "
        f"iterations each; s/step and s/it are medians, ratios are the median of the repeats' own ratios (each "
        f"repeat's in brackets); torch threads {args.threads}. Both sides in-loop, set-up separate (see the "
        "module docstring). The machine was loaded by other work while this ran: only the ratios hold.",
        "",
        *rows,
    ]
    print("\n".join(lines))
    if args.record:
        append_result(
            "Per-iteration time, engine vs the seed's loop (faithful: targets once), CPU",
            f"python -m bench.per_iteration --sizes {args.sizes} --iterations {args.iterations} "
            f"--repeats {args.repeats} --threads {args.threads}",
            [machine_line(), "", *lines],
        )


if __name__ == "__main__":
    main()
