"""Benchmark: the engine's L-BFGS (worker/engine/lbfgs.py) against torch.optim.LBFGS, through stylize().

    python -m bench.lbfgs_direction [--size 256] [--iterations 40] [--history 100] [--repeats 2]
                                    [--device cpu|cuda] [--no-record]

Both optimisers run the engine's real job (default StyleParams: original VGG19, content init,
L-BFGS with strong Wolfe, the sized first step), interleaved --repeats times after an untimed
warm-up of each; the engine builds torch's LBFGS (max_iter=1, the same tolerances and max_eval)
in place of its own for the "torch" runs. Per run: ms per iteration in steady state (the median
gap between on_progress calls after iteration 5, synchronised on a GPU), evaluations, the final
reported objective; and, from one more run of each under a dispatch counter, tensor-to-Python
scalar reads per iteration (each a host-device synchronisation on a GPU) over the same window.
The two optimisers take the same steps up to rounding (tests/engine/test_lbfgs.py), so their
objectives should agree to a few digits.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from bench.delivered_gap import CONTENT, STYLE
from bench.results import append_result, machine_line
from impasto.worker.engine import Callbacks, Losses, StyleParams, optimize, stylize

STEADY_FROM = 5  # iterations before this are left out of ms/iteration (the first step, a short history)


@contextlib.contextmanager
def torch_lbfgs(line_search_fn: str | None = "strong_wolfe") -> Iterator[None]:
    """While open, the engine builds torch.optim.LBFGS with the settings it gives its own
    (and `line_search_fn`: None for fixed steps, bench.lbfgs_settings)."""
    original = optimize.LBFGS

    def build(params: list[torch.Tensor], lr: float, max_eval: int, history_size: int) -> torch.optim.LBFGS:
        return torch.optim.LBFGS(
            params,
            lr=lr,
            max_iter=1,
            max_eval=max_eval,
            history_size=history_size,
            tolerance_grad=0.0,
            tolerance_change=0.0,
            line_search_fn=line_search_fn,
        )

    optimize.LBFGS = build  # type: ignore[assignment,misc]
    try:
        yield
    finally:
        optimize.LBFGS = original  # type: ignore[misc]


class ScalarReads(TorchDispatchMode):
    """Counts aten::_local_scalar_dense (.item(), float(t), a 0-dim tensor used as a Python number)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        if func is torch.ops.aten._local_scalar_dense.default:
            self.count += 1
        return func(*args, **(kwargs or {}))


class Stamps(Callbacks):
    """Synchronised time of every on_progress; optionally the scalar reads counted by then."""

    def __init__(self, device: str, reads: ScalarReads | None = None) -> None:
        self.device = device
        self.reads = reads
        self.times: dict[int, float] = {}
        self.read_counts: dict[int, int] = {}

    def on_progress(self, iteration: int, losses: Losses) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        self.times[iteration] = time.perf_counter()
        if self.reads is not None:
            self.read_counts[iteration] = self.reads.count


def one_run(params: StyleParams, which: str, device: str, count_reads: bool = False) -> dict[str, Any]:
    """One stylize() with `which` optimiser ("engine" or "torch")."""
    context = torch_lbfgs() if which == "torch" else contextlib.nullcontext()
    reads = ScalarReads() if count_reads else None
    stamps = Stamps(device, reads)
    with context, reads if reads is not None else contextlib.nullcontext():
        result = stylize(CONTENT, [STYLE], params, stamps, device=device)
    window = [i for i in sorted(stamps.times) if i >= STEADY_FROM]
    gaps = [stamps.times[b] - stamps.times[a] for a, b in zip(window, window[1:], strict=False)]
    row: dict[str, Any] = {
        "ms_per_iteration": statistics.median(gaps) * 1e3,
        "evaluations": result.evaluations,
        "total": result.losses.total if result.losses else float("nan"),
    }
    if reads is not None:
        row["reads_per_iteration"] = (stamps.read_counts[window[-1]] - stamps.read_counts[window[0]]) / (
            len(window) - 1
        )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--history", type=int, default=StyleParams().lbfgs_history)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--record", action=argparse.BooleanOptionalAction, default=True, help="append to RESULTS.md")
    args = parser.parse_args()
    params = StyleParams(size=args.size, iterations=args.iterations, lbfgs_history=args.history, snapshot_every=0)
    warm = StyleParams(size=args.size, iterations=STEADY_FROM + 2, lbfgs_history=args.history, snapshot_every=0)
    for which in ("engine", "torch"):
        one_run(warm, which, args.device)  # untimed: model load, cuDNN autotune, allocator
    runs: dict[str, list[dict[str, Any]]] = {"engine": [], "torch": []}
    for _ in range(args.repeats):
        for which in ("torch", "engine"):
            runs[which].append(one_run(params, which, args.device))
            print(f"{which}: {runs[which][-1]}", flush=True)
    reads = {which: one_run(params, which, args.device, count_reads=True)["reads_per_iteration"] for which in runs}
    lines = [
        f"{args.size} px, {args.iterations} iterations, history {args.history}, {args.device}; "
        f"ms/iteration: median gap between on_progress calls from iteration {STEADY_FROM}, per repeat; "
        "scalar reads per iteration from one more run of each under a dispatch counter.",
        "",
        "| optimiser | ms/iteration, repeats | evaluations | final objective | scalar reads / iteration |",
        "| --- | --- | --- | --- | --- |",
    ]
    for which, label in (("torch", "torch.optim.LBFGS"), ("engine", "engine's LBFGS (worker/engine/lbfgs.py)")):
        rows = runs[which]
        times = ", ".join(f"{r['ms_per_iteration']:.1f}" for r in rows)
        lines.append(
            f"| {label} | {times} | "
            f"{', '.join(str(r['evaluations']) for r in rows)} | {rows[-1]['total']:.5g} | {reads[which]:.1f} |"
        )
    ratio = statistics.median(r["ms_per_iteration"] for r in runs["engine"]) / statistics.median(
        r["ms_per_iteration"] for r in runs["torch"]
    )
    lines += ["", f"engine / torch, median ms per iteration: {ratio:.3f}"]
    print("\n".join(lines), flush=True)
    if args.record:
        append_result(
            f"L-BFGS direction: the engine's against torch's, {args.size} px ({args.device})",
            f"python -m bench.lbfgs_direction --size {args.size} --iterations {args.iterations} "
            f"--history {args.history} --repeats {args.repeats} --device {args.device}",
            [machine_line(), "", *lines],
        )


if __name__ == "__main__":
    main()
