"""Benchmark 2: time to quality at 256 px, scored on the delivered 8-bit image.

    python -m bench.time_to_quality [--size 256] [--seed-steps 1000] [--pastiche-steps 200]

One fixed definition scores every image: the seed notebook's content loss (MSE at conv4_2)
and style loss (its Gram MSE over five layers with weights 1, .75, .2, .2, .2), on the
original VGG19 with caffe preprocessing, each reported separately. Compared in one run:
the seed's Adam schedule (lr 0.003, init content), the `pastiche` CLI (L-BFGS), and the
engine with its default settings. For the engine, every second iteration's image is kept
(outside the timed work) and scored afterwards, to find when it first reaches each baseline.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from bench.reference_gatys import (
    SEED_CONTENT_LAYER,
    SEED_STYLE_LAYERS,
    caffe,
    seed_features,
    seed_gram,
    seed_loss,
    seed_vgg,
)
from bench.results import append_result, machine_line
from worker.engine import Callbacks, Losses, StyleParams, imaging, stylize

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


def run_seed(size: int, steps: int) -> tuple[Image.Image, float]:
    """The seed notebook's Adam loop on caffe-scale pixels; returns the delivered image and loop seconds."""
    model = seed_vgg()
    content_image = imaging.open_image(CONTENT)
    dims = imaging.fit_long_side(*content_image.size, size)
    content = caffe(imaging.to_tensor(content_image, dims))
    style_image = imaging.open_image(STYLE)
    style = caffe(imaging.to_tensor(style_image, imaging.fit_long_side(*style_image.size, size)))
    target = content.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([target], lr=0.003)
    started = time.perf_counter()
    for _ in range(steps):
        optimizer.zero_grad()
        seed_loss(target, content, style, model).backward()
        optimizer.step()
    seconds = time.perf_counter() - started
    mean = torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    rgb = (target.detach() + mean)[:, [2, 1, 0]]  # undo caffe preprocessing: BGR + mean -> RGB
    return imaging.to_image(rgb), seconds


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


class Trajectory(Callbacks):
    """Keeps every snapshot with the loop time at which it was taken (time spent here excluded)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.paused = 0.0
        self.points: list[tuple[int, float, Image.Image]] = []
        self.final_losses: Losses | None = None

    def on_snapshot(self, iteration: int, image: Image.Image) -> None:
        """Record (iteration, seconds so far, image)."""
        entered = time.perf_counter()
        self.points.append((iteration, entered - self.started - self.paused, image.copy()))
        self.paused += time.perf_counter() - entered


def score_row(name: str, seconds: float, score: Score) -> str:
    """One table row: run, wall seconds, content and style loss."""
    return f"| {name} | {seconds:.1f} | {score.content:.4g} | {score.style:.4g} |"


def first_reaching(points: list[tuple[int, float, Score]], style: float, content: float) -> tuple[int, float] | None:
    """The first (iteration, seconds) whose style <= style and content <= content."""
    for iteration, seconds, score in points:
        if score.style <= style and score.content <= content:
            return iteration, seconds
    return None


def main() -> None:
    """Run the three, score them the same way, print and record the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed-steps", type=int, default=1000)
    parser.add_argument("--pastiche-steps", type=int, default=200)
    parser.add_argument("--engine-iterations", type=int, default=300)
    args = parser.parse_args()
    scorer = Scorer(args.size)
    seed_image, seed_seconds = run_seed(args.size, args.seed_steps)
    seed_score = scorer(seed_image)
    with tempfile.TemporaryDirectory() as folder:
        pastiche_image, pastiche_seconds = run_pastiche(args.size, args.pastiche_steps, Path(folder))
    pastiche_score = scorer(pastiche_image)
    stylize(CONTENT, [STYLE], StyleParams(size=32, iterations=1))  # load the model outside the timing
    trajectory = Trajectory()
    params = StyleParams(size=args.size, iterations=args.engine_iterations, snapshot_every=2)
    result = stylize(CONTENT, [STYLE], params, trajectory)
    scored = [(i, s, scorer(img)) for i, s, img in trajectory.points]
    engine_score = scorer(result.image)
    seed_hit = first_reaching(scored, seed_score.style, 1.3 * seed_score.content)
    pastiche_hit = first_reaching(scored, pastiche_score.style, pastiche_score.content)
    rows = [
        "| run | wall s | content loss | style loss |",
        "| --- | --- | --- | --- |",
        score_row(f"seed Adam lr 0.003, {args.seed_steps} steps (loop)", seed_seconds, seed_score),
        score_row(f"pastiche L-BFGS, {args.pastiche_steps} steps (whole process)", pastiche_seconds, pastiche_score),
        score_row(f"engine defaults, {args.engine_iterations} iterations (loop)", result.seconds, engine_score),
        "",
        "| target | engine reaches it at | engine s | baseline s | ratio |",
        "| --- | --- | --- | --- | --- |",
    ]  # fmt: skip
    for name, hit, baseline in (
        ("seed's style, content <= 1.3x seed's", seed_hit, seed_seconds),
        ("pastiche's style, content <= pastiche's", pastiche_hit, pastiche_seconds),
    ):
        if hit is None:
            rows.append(f"| {name} | not reached in {args.engine_iterations} iterations | - | {baseline:.1f} | - |")
        else:
            rows.append(f"| {name} | iteration {hit[0]} | {hit[1]:.1f} | {baseline:.1f} | 1/{baseline / hit[1]:.1f} |")
    print("\n".join(rows))
    command = (
        f"python -m bench.time_to_quality --size {args.size} --seed-steps {args.seed_steps} "
        f"--pastiche-steps {args.pastiche_steps} --engine-iterations {args.engine_iterations}"
    )
    title = f"Time to quality at {args.size} px (delivered PNGs, seed definition)"
    append_result(title, command, [machine_line(), "", *rows])


if __name__ == "__main__":
    main()
