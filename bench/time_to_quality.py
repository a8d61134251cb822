"""Benchmark 2: time to pastiche's quality at 256 px, both timed as whole processes, scored on delivered PNGs.

    python -m bench.time_to_quality [--size 256] [--pastiche-steps 200] [--engine-iterations 60] [--repeats 1]

One fixed definition scores every image: the seed notebook's content loss (MSE at conv4_2)
and style loss (its Gram MSE over five layers with weights 1, .75, .2, .2, .2), on the
original VGG19 with caffe preprocessing, each reported separately (the style at the
content's long side, aspect kept). Both sides run as whole processes started the same way
from this script, each with its own Python start-up, imports and model load:
- pastiche: `python -m pastiche ... --num-steps N`, timed from spawn to exit;
- engine: `python -m bench.engine_process` (stylize with its default settings), every second
  iteration's image written with its time since spawn (the writing excluded); the engine's
  time to pastiche's quality is the first kept iteration reaching it, from spawn.
The engine's process time to its stylize call (start-up) is reported too. With --repeats > 1
the two run interleaved (pastiche, engine, pastiche, ...) and the medians are compared.
The seed's own race is bench.seed_race.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from bench.reference_gatys import SEED_CONTENT_LAYER, SEED_STYLE_LAYERS, caffe, seed_features, seed_gram, seed_vgg
from bench.results import append_result, machine_line
from impasto.worker.engine import imaging

CONTENT, STYLE = "shared/samples/chelsea.jpg", "shared/samples/starry_night.jpg"


@dataclass(frozen=True)
class Score:
    """The fixed definition's two terms for one delivered image."""

    content: float
    style: float


class Scorer:
    """Scores RGB images against the content and style at one size."""

    def __init__(self, size: int) -> None:
        self.model = seed_vgg()
        content = imaging.open_image(CONTENT)
        self.size = imaging.fit_long_side(*content.size, size)
        style = imaging.open_image(STYLE)
        with torch.no_grad():
            self.content = seed_features(caffe(imaging.to_tensor(content, self.size)), self.model)
            style_tensor = caffe(imaging.to_tensor(style, imaging.fit_long_side(*style.size, size)))
            self.grams = {k: seed_gram(v) for k, v in seed_features(style_tensor, self.model).items()}

    def __call__(self, image: Image.Image) -> Score:
        """Content and style loss of an 8-bit image (resized to the scoring size if needed)."""
        with torch.no_grad():
            features = seed_features(caffe(imaging.to_tensor(image.convert("RGB"), self.size)), self.model)
            content = torch.mean((features[SEED_CONTENT_LAYER] - self.content[SEED_CONTENT_LAYER]) ** 2)
            style = torch.zeros(())
            for layer, weight in SEED_STYLE_LAYERS.items():
                _, d, h, w = features[layer].shape
                style += weight * torch.mean((seed_gram(features[layer]) - self.grams[layer]) ** 2) / (d * h * w)
        return Score(float(content), float(style))


def run_pastiche(size: int, steps: int, folder: Path) -> tuple[Image.Image, float]:
    """The pastiche CLI (L-BFGS) as a process; returns its PNG and the process's wall seconds."""
    output = folder / "pastiche.png"
    command = [
        sys.executable, "-m", "pastiche", "--content", CONTENT, "--styles", STYLE, "--output", str(output),
        "--size", str(size), "--num-steps", str(steps), "--no-verbose", "--device", "cpu",
    ]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return Image.open(output).convert("RGB"), time.perf_counter() - started


def score_row(name: str, seconds: float, score: Score) -> str:
    """One table row: run, wall seconds, content and style loss."""
    return f"| {name} | {seconds:.1f} | {score.content:.4g} | {score.style:.4g} |"


def first_reaching(points: list[tuple[int, float, Score]], style: float, content: float) -> tuple[int, float] | None:
    """The first (iteration, seconds) whose style <= style and content <= content."""
    for iteration, seconds, score in points:
        if score.style <= style and score.content <= content:
            return iteration, seconds
    return None


def run_engine(size: int, iterations: int, folder: Path) -> tuple[list[tuple[int, float, Image.Image]], float, float]:
    """The engine as a process; ([(iteration, seconds since spawn, image)], process wall s, start-up s)."""
    command = [
        sys.executable, "-m", "bench.engine_process", "--spawned-at", "", "--size", str(size),
        "--iterations", str(iterations), "--snapshot-every", "2", "--out", str(folder),
    ]  # fmt: skip
    spawned_at = time.time()
    command[4] = repr(spawned_at)
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    wall = time.perf_counter() - started
    times = json.loads((folder / "times.json").read_text())
    points = [(int(i), s, Image.open(folder / f"{i}.png").convert("RGB")) for i, s in times["snapshots"].items()]
    return sorted(points, key=lambda p: p[0]), wall, times["stylize_called_s"]


def main() -> None:
    """Run both as processes (interleaved when repeated), score them the same way, print and record."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--pastiche-steps", type=int, default=200)
    parser.add_argument("--engine-iterations", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    scorer = Scorer(args.size)
    pastiche_walls, engine_walls, startups, hits = [], [], [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as folder:
            pastiche_image, seconds = run_pastiche(args.size, args.pastiche_steps, Path(folder))
            pastiche_walls.append(seconds)
            pastiche_score = scorer(pastiche_image)
        with tempfile.TemporaryDirectory() as folder:
            points, wall, startup = run_engine(args.size, args.engine_iterations, Path(folder))
        engine_walls.append(wall)
        startups.append(startup)
        scored = [(i, s, scorer(img)) for i, s, img in points]
        engine_score = scored[-1][2]
        hit = first_reaching(scored, pastiche_score.style, pastiche_score.content)
        if hit is not None:
            hits.append(hit)
        print(
            f"pastiche {seconds:.1f} s {pastiche_score}; engine {wall:.1f} s {engine_score}; reaches at {hit}",
            flush=True,
        )
    pastiche_s = statistics.median(pastiche_walls)
    rows = [
        "| run | whole process s (median) | content loss | style loss |",
        "| --- | --- | --- | --- |",
        score_row(f"pastiche L-BFGS, {args.pastiche_steps} steps", pastiche_s, pastiche_score),
        score_row(
            f"engine defaults, {args.engine_iterations} iterations", statistics.median(engine_walls), engine_score
        ),
        "",
        "| target | engine reaches it at | engine s from spawn | pastiche s from spawn | ratio |",
        "| --- | --- | --- | --- | --- |",
    ]
    name = "pastiche's style, content <= pastiche's"
    if not hits:
        rows.append(f"| {name} | not reached in {args.engine_iterations} iterations | - | {pastiche_s:.1f} | - |")
    else:
        seconds = statistics.median(h[1] for h in hits)
        rows.append(
            f"| {name} | iteration {hits[-1][0]} | {seconds:.1f} | {pastiche_s:.1f} | 1/{pastiche_s / seconds:.1f} |"
        )
    lines = [
        f"Both whole processes from spawn to exit (pastiche) or to the reaching iteration (engine); {args.repeats} "
        f"interleaved repeat(s), medians. Engine start-up (spawn to its stylize call: Python, imports, no model "
        f"yet): {statistics.median(startups):.1f} s, included above. torch {torch.__version__} in both. "
        "The machine was loaded by other work while this ran: the ratio is what holds.",
        "",
        *rows,
    ]
    print("\n".join(lines))
    command = (
        f"python -m bench.time_to_quality --size {args.size} --pastiche-steps {args.pastiche_steps} "
        f"--engine-iterations {args.engine_iterations} --repeats {args.repeats}"
    )
    title = f"Time to pastiche's quality at {args.size} px, both as whole processes (delivered PNGs, seed definition)"
    append_result(title, command, [machine_line(), "", *lines])


if __name__ == "__main__":
    main()
