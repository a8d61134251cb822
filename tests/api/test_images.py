"""Image checks with Pillow, without the app."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from api.images import ImageRejected, check_image
from tests.api.conftest import Images, image_bytes

LIMIT = 40_000_000


@pytest.mark.parametrize(
    ("name", "image_format", "extension"), [("jpeg", "JPEG", "jpg"), ("png", "PNG", "png"), ("webp", "WEBP", "webp")]
)
def test_accepted_formats(images: Images, name: str, image_format: str, extension: str) -> None:
    """JPEG, PNG and WebP pass, with their size and storage extension."""
    data = getattr(images, name)
    checked = check_image(data, LIMIT)
    assert (checked.format, checked.extension, checked.data) == (image_format, extension, data)
    with Image.open(io.BytesIO(data)) as image:
        assert (checked.width, checked.height) == image.size


def animated_webp() -> bytes:
    """A two-frame WebP."""
    frames = [Image.new("RGB", (8, 8), color) for color in ("red", "green")]
    buffer = io.BytesIO()
    frames[0].save(buffer, "WEBP", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "code", "fragment"),
    [
        (b"", "invalid_image", "empty"),
        (b"GIF89a" + b"\0" * 20, "invalid_image", ""),
        (image_bytes("GIF"), "unsupported_format", "GIF"),
        (image_bytes("BMP"), "unsupported_format", "BMP"),
        (image_bytes("TIFF"), "unsupported_format", "TIFF"),
        (animated_webp(), "unsupported_format", "animated"),
        (image_bytes("JPEG", (256, 256))[:300], "invalid_image", "decoded"),
    ],
    ids=["empty", "broken gif", "gif", "bmp", "tiff", "animated webp", "truncated jpeg"],
)
def test_rejected(data: bytes, code: str, fragment: str) -> None:
    """Each refusal says why."""
    with pytest.raises(ImageRejected) as caught:
        check_image(data, LIMIT)
    assert caught.value.code == code
    assert fragment in caught.value.message


def test_pixel_limit_is_checked_before_decoding(images: Images) -> None:
    """The limit applies to width x height from the header."""
    assert check_image(images.jpeg, 64 * 48).width == 64
    with pytest.raises(ImageRejected) as caught:
        check_image(images.jpeg, 64 * 48 - 1)
    assert caught.value.code == "image_too_large"
