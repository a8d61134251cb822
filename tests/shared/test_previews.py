"""Preview keys and encoding: where a preview is stored, its size, and images of every mode as JPEG."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from impasto.shared.previews import PREVIEW_MAX_SIDE, encode_preview, preview_key, preview_size
from impasto.shared.storage import job_prefix, output_key, snapshot_key, upload_key


def test_a_preview_lies_beside_its_image() -> None:
    """A job's previews are under the job's prefix (deleted with it); an upload's beside the upload."""
    assert preview_key(output_key("j1")) == "jobs/j1/final.preview.jpg"
    assert preview_key(snapshot_key("j1", 40)) == "jobs/j1/snapshots/000040.preview.jpg"
    assert preview_key(output_key("j1")).startswith(job_prefix("j1"))
    upload = upload_key(b"abc", "webp")
    assert preview_key(upload) == upload.removesuffix(".webp") + ".preview.jpg"


@pytest.mark.parametrize(
    ("size", "expected"),
    [((4096, 2724), (1024, 681)), ((2724, 4096), (681, 1024)), ((300, 200), (300, 200)), ((5000, 1), (1024, 1))],
)
def test_preview_size_bounds_the_long_side_and_never_enlarges(size: tuple[int, int], expected: tuple[int, int]) -> None:
    """The long side is at most PREVIEW_MAX_SIDE; small images keep their size; no side is 0."""
    assert preview_size(*size) == expected


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "CMYK", "I;16", "1"])
def test_every_mode_encodes_as_an_rgb_or_grey_jpeg(mode: str) -> None:
    """Whatever the mode of the original, the preview is a JPEG Pillow reads back, and the original is untouched."""
    image = Image.new("RGB", (1500, 900), (200, 30, 30)).convert(mode)
    before = image.tobytes()
    preview = Image.open(io.BytesIO(encode_preview(image)))
    assert preview.format == "JPEG" and preview.mode in ("RGB", "L")
    assert preview.size == (PREVIEW_MAX_SIDE, 614)
    assert image.tobytes() == before and image.size == (1500, 900)


def test_upright_turns_the_preview() -> None:
    """A sideways photo's orientation is applied to the small image."""
    preview = Image.open(io.BytesIO(encode_preview(Image.new("RGB", (1600, 1200)), upright=Image.Transpose.ROTATE_270)))
    assert preview.size == (768, 1024)
