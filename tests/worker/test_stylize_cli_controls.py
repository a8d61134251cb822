"""`impasto stylize` with the controls' flags, on the real engine at a tiny size."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from PIL import Image, ImageDraw

from impasto.cli.stylize import stylize


def test_stylize_takes_a_mask_regions_and_the_other_controls(samples: Path, tmp_path: Path) -> None:
    """--mask with --region, --style-loss, --color-transfer, per-style weights and scales: a PNG of the size asked."""
    label = Image.new("RGB", (451, 300), (255, 0, 0))
    ImageDraw.Draw(label).rectangle((225, 0, 451, 300), fill=(0, 0, 255))
    label.save(tmp_path / "labels.png")
    out = tmp_path / "out.png"
    result = CliRunner().invoke(
        stylize,
        [
            str(samples / "chelsea.jpg"), str(samples / "starry_night.jpg"), str(samples / "the_scream.jpg"),
            "-o", str(out), "--size", "32", "--iterations", "2", "--device", "cpu", "--json",
            "--mask", str(tmp_path / "labels.png"), "--region", "#ff0000=0", "--region", "#0000ff=1:1,0:0.5",
            "--style-loss", "w2", "--color-transfer", "after", "--color-method", "cholesky",
            "--style-layer-weights-per-style", "0,0,1,1,1;1,1,1,0,0", "--style-scales", "1,0.5",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["iterations"] == 2
    with Image.open(out) as image:
        assert image.size == (32, 21)


def test_stylize_refuses_a_mask_colour_no_region_names(samples: Path, tmp_path: Path) -> None:
    """A label colour without a --region is an error that names the colour; nothing is written."""
    Image.new("RGB", (40, 30), (0, 255, 0)).save(tmp_path / "labels.png")
    out = tmp_path / "out.png"
    result = CliRunner().invoke(
        stylize,
        [str(samples / "chelsea.jpg"), str(samples / "starry_night.jpg"), "-o", str(out), "--size", "32",
         "--iterations", "1", "--device", "cpu", "--mask", str(tmp_path / "labels.png"), "--region", "#ff0000=0"],
    )  # fmt: skip
    assert result.exit_code == 1 and "#00ff00" in result.output
    assert not out.exists()
