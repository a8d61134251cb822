"""Benchmark: peak memory (max RSS) and seconds per iteration at print sizes, tiled and untiled (CPU).

    python -m bench.print_size [--runs 512:0,512:auto,1024:0,1024:auto,2048:auto] [--iterations 3]
                               [--budget-mb 2048] [--no-record]

Each run is its own process under `/usr/bin/time -v` (max RSS is the whole process's: Python,
torch, the network, targets and optimiser), stylize() with the default StyleParams (L-BFGS),
the sample content upscaled to SIZE px on its long side, `tile` 0 (untiled), `auto` (the
memory plan decides) or N px. Seconds per iteration: the median gap between on_progress calls
after the first iteration (the first also computes the targets); evaluations per iteration from
the Result. The memory budget (IMPASTO_ENGINE_MEMORY_BUDGET_MB) also sets L-BFGS's history.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

from bench.results import append_result, machine_line

CONTENT, STYLE = "shared/samples/chelsea.jpg", "shared/samples/starry_night.jpg"


def child(size: int, tile: str, iterations: int) -> None:
    """Run stylize once and print one JSON line of its figures."""
    from impasto.worker.engine import Callbacks, Losses, StyleParams, stylize
    from impasto.worker.engine.memory import cpu_budget_from_environment

    class Clock(Callbacks):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_progress(self, iteration: int, losses: Losses) -> None:
            self.times.append(time.perf_counter())

    clock = Clock()
    params = StyleParams(iterations=iterations, size=size, tile=None if tile == "auto" else int(tile))
    result = stylize(CONTENT, [STYLE], params, clock, memory_budget=cpu_budget_from_environment())
    gaps = [b - a for a, b in zip(clock.times, clock.times[1:], strict=False)]
    assert result.memory is not None and result.losses is not None
    print(
        json.dumps(
            {
                "size": list(result.image.size),
                "tile": result.memory.tile,
                "history": result.memory.history,
                "s_per_iteration": statistics.median(gaps) if gaps else result.seconds / result.iterations,
                "evaluations": result.evaluations,
                "iterations": result.iterations,
                "total": result.losses.total,
            }
        )
    )


def measure(size: int, tile: str, iterations: int, budget_mb: int) -> dict[str, object]:
    """One run in its own process under /usr/bin/time -v; its figures and max RSS in MiB."""
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "bench.print_size", "--child", f"{size}:{tile}"]
    command += ["--iterations", str(iterations)]
    env = {**os.environ, "IMPASTO_ENGINE_MEMORY_BUDGET_MB": str(budget_mb)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        return {"size": size, "asked": tile, "error": done.stderr.strip().splitlines()[-1:]}
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))  # type: ignore[union-attr]
    return {**figures, "asked": tile, "max_rss_mib": rss_kb / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="512:0,512:auto,1024:0,1024:auto,2048:auto")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--budget-mb", type=int, default=2048)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    if args.child:
        size, tile = args.child.split(":")
        child(int(size), tile, args.iterations)
        return
    load = os.getloadavg()[0]
    lines = [
        machine_line(),
        f"Load average at the start: {load:.1f}; budget {args.budget_mb} MB; {args.iterations} iterations a run.",
        "",
        "| size (px) | tile asked | tile used | L-BFGS history | max RSS (MiB) | s / iteration | evaluations |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in args.runs.split(","):
        size, tile = run.split(":")
        r = measure(int(size), tile, args.iterations, args.budget_mb)
        if "error" in r:
            line = f"| {size} | {tile} | failed: {r['error']} | | | | |"
        else:
            line = (
                f"| {r['size'][0]}x{r['size'][1]} | {tile} | {r['tile']} | {r['history']} | "  # type: ignore[index]
                f"{r['max_rss_mib']:.0f} | {r['s_per_iteration']:.1f} | {r['evaluations']} |"
            )
        print(line, flush=True)
        lines.append(line)
    lines.append(f"Load average at the end: {os.getloadavg()[0]:.1f}.")
    if not args.no_record:
        command = f"python -m bench.print_size --runs {args.runs} --iterations {args.iterations}"
        append_result("Print sizes: max RSS and s/iteration, tiled and untiled (L-BFGS, CPU)", command, lines)


if __name__ == "__main__":
    main()
