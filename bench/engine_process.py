"""The engine as a whole process, for benchmarks that time a peer's CLI as a whole process.

    python -m bench.engine_process --spawned-at EPOCH_S --size 256 --iterations 60 --out DIR

Imports, loads the model and runs stylize() with the default StyleParams, as any CLI would,
keeping every --snapshot-every'th iteration's image as DIR/<iteration>.png. DIR/times.json gets
each kept iteration's seconds since --spawned-at (the parent's time.time() just before it
started this process), less the time spent writing the PNGs, and when stylize was called.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from PIL import Image

from impasto.worker.engine import Callbacks, StyleParams, stylize

CONTENT, STYLE = "shared/samples/chelsea.jpg", "shared/samples/starry_night.jpg"


class Keeper(Callbacks):
    """Writes snapshots with their time since the spawn, the writing excluded."""

    def __init__(self, out: Path, spawned_at: float) -> None:
        self.out = out
        self.spawned_at = spawned_at
        self.paused = 0.0
        self.times: dict[int, float] = {}

    def on_snapshot(self, iteration: int, image: Image.Image) -> None:
        """Keep the image and when it was reached."""
        entered = time.time()
        self.times[iteration] = entered - self.spawned_at - self.paused
        image.save(self.out / f"{iteration}.png")
        self.paused += time.time() - entered


def main() -> None:
    """Run stylize once and write the snapshots and times."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--spawned-at", type=float, required=True)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--snapshot-every", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    keeper = Keeper(args.out, args.spawned_at)
    called = time.time() - args.spawned_at
    params = StyleParams(size=args.size, iterations=args.iterations, snapshot_every=args.snapshot_every)
    stylize(CONTENT, [STYLE], params, keeper)
    (args.out / "times.json").write_text(json.dumps({"stylize_called_s": called, "snapshots": keeper.times}))


if __name__ == "__main__":
    main()
