"""The seed's N-step result at one size, run once and kept: the target of bench.seed_race.

    python -m bench.seed_final [--size 256] [--steps 1000] [--threads 1]

Runs bench.reference_gatys.SeedRun (the notebook's loop, faithfully) for --steps and writes
bench/out/seed_<size>_<steps>.png (the delivered image) and .json (its losses every 50 steps,
and the delivered image's content and style loss under the seed's own definition). Its wall
time is NOT a figure: it runs in the background on a shared machine; bench.seed_race measures
the seed's per-step time side by side with the engine instead.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from bench.reference_gatys import SeedRun
from bench.seed_score import CONTENT, STYLE, SeedScorer

OUT = Path(__file__).parent / "out"


def final_path(size: int, steps: int) -> Path:
    """Where the N-step result's JSON lives (the PNG sits next to it)."""
    return OUT / f"seed_{size}_{steps}.json"


def main() -> None:
    """Run the seed's loop and write its delivered image and losses."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 leaves a core to the machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    OUT.mkdir(exist_ok=True)
    run = SeedRun(CONTENT, STYLE, args.size)
    trajectory = []
    started = time.perf_counter()
    for step in range(1, args.steps + 1):
        run.step()
        if step % 50 == 0 or step == args.steps:
            assert run.last is not None
            trajectory.append({"step": step, "content": run.last[0], "style": run.last[1]})
            print(f"step {step}: content {run.last[0]:.4g} style {run.last[1]:.4g}", flush=True)
    image = run.image()
    path = final_path(args.size, args.steps)
    image.save(path.with_suffix(".png"))
    score = SeedScorer(args.size)(image)
    record = {
        "command": f"python -m bench.seed_final --size {args.size} --steps {args.steps} --threads {args.threads}",
        "size": args.size,
        "steps": args.steps,
        "delivered": {"content": score.content, "style": score.style, "total": score.total},
        "trajectory": trajectory,
        "wall_s_not_a_figure": time.perf_counter() - started,
    }
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record["delivered"]))


if __name__ == "__main__":
    main()
