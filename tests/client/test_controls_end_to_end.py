"""The controls of issue 14 end to end: the Python client and `impasto submit`, through gunicorn, Redis, a real
CPU worker and PostgreSQL."""

from __future__ import annotations

import io
import time
from pathlib import Path

from click.testing import CliRunner
from PIL import Image, ImageDraw

from impasto.cli.client_commands import submit
from tests.client.conftest import Stack


def label_png(size: tuple[int, int] = (451, 300)) -> bytes:
    """Left half red, right half blue."""
    label = Image.new("RGB", size, (255, 0, 0))
    ImageDraw.Draw(label).rectangle((size[0] // 2, 0, size[0], size[1]), fill=(0, 0, 255))
    buffer = io.BytesIO()
    label.save(buffer, "PNG")
    return buffer.getvalue()


def test_client_runs_a_job_with_every_control(stack: Stack, samples: Path) -> None:
    """Mask and regions, W2, colour after, per-style layer weights and style scales: the job succeeds on the worker."""
    client = stack.client()
    job = client.submit(
        samples / "chelsea.jpg",
        [samples / "starry_night.jpg", samples / "the_scream.jpg"],
        {"regions": {"#ff0000": {"0": 1.0}, "#0000ff": {"1": 1.0}}},
        mask=label_png(),
        style_masks=[None, label_png((300, 200))],
        size=24,
        iterations=3,
        snapshot_every=0,
        style_loss="w2",
        color_transfer="after",
        style_layer_weights_per_style=[[0, 0, 1, 1, 1], [1, 1, 1, 0, 0]],
        style_scales=[1.0, 0.5],
    )
    deadline = time.monotonic() + 600  # the shared CPUs are slow under load; Prefer: wait is capped server-side
    while job["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(1)
        job = client.get(job["id"])
    assert job["status"] == "succeeded", job
    assert job["params"]["regions"] == {"#ff0000": {"0": 1.0}, "#0000ff": {"1": 1.0}}
    assert client.download_output(job["id"]).startswith(b"\x89PNG")


def test_impasto_submit_takes_mask_and_regions(stack: Stack, samples: Path, tmp_path: Path) -> None:
    """`impasto submit content a b --mask labels.png --region '#ff0000=0' --region '#0000ff=1' --wait` writes it."""
    (tmp_path / "labels.png").write_bytes(label_png())
    out = tmp_path / "out.png"
    result = CliRunner().invoke(
        submit,
        [
            str(samples / "chelsea.jpg"), str(samples / "starry_night.jpg"), str(samples / "the_scream.jpg"),
            "--mask", str(tmp_path / "labels.png"), "--region", "#ff0000=0", "--region", "#0000ff=1",
            "--param", "size=24", "--param", "iterations=3", "--param", "snapshot_every=0",
            "--param", "color_transfer=before", "--wait", "--out", str(out), "--url", stack.url,
        ],
        env={"IMPASTO_API_KEY": stack.api_key},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"\x89PNG")


def test_impasto_submit_reports_a_mask_that_does_not_fit(stack: Stack, samples: Path, tmp_path: Path) -> None:
    """A label colour no --region names: the API's 422 comes back as the command's error."""
    (tmp_path / "labels.png").write_bytes(label_png())
    result = CliRunner().invoke(
        submit,
        [str(samples / "chelsea.jpg"), str(samples / "starry_night.jpg"), "--mask", str(tmp_path / "labels.png"),
         "--region", "#ff0000=0", "--url", stack.url],
        env={"IMPASTO_API_KEY": stack.api_key},
    )  # fmt: skip
    assert result.exit_code == 1
    assert "invalid_mask" in result.output and "#0000ff" in result.output
