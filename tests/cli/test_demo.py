"""`impasto demo` finds the images it paints wherever the package is installed."""

from __future__ import annotations

from PIL import Image

from impasto.cli.demo import SAMPLES


def test_the_bundled_samples_are_found() -> None:
    """The cat and The Starry Night are where the demo looks, and decode."""
    for name in ("chelsea.jpg", "starry_night.jpg"):
        with Image.open(SAMPLES / name) as image:
            assert min(image.size) > 0
