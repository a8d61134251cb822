"""Image checks with Pillow, without the app."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageFile

from impasto.api.images import ImageRejected, check_image
from tests.api import image_factory as made
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


@pytest.mark.parametrize(
    "data",
    [made.png_claiming(100_000, 100_000), made.bomb_png(20_000, 20_000), made.bomb_png(7_000, 7_000)],
    ids=["header claims 100000x100000", "bomb 20000x20000", "bomb under pillow's guard"],
)
def test_bombs_are_refused_before_any_decoding(data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pixel count comes from the header: load() is never reached."""

    def no_decoding(self: ImageFile.ImageFile) -> None:
        """Fail the test if pixels are decoded."""
        raise AssertionError("decoded a bomb")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ImageRejected) as caught:
        check_image(data, LIMIT)
    assert caught.value.code == "image_too_large"


def test_allowed_formats_narrow_what_is_accepted(images: Images) -> None:
    """A format left out of the setting is refused as unsupported, naming what is accepted."""
    with pytest.raises(ImageRejected) as caught:
        check_image(images.webp, LIMIT, ("JPEG", "PNG"))
    assert caught.value.code == "unsupported_format"
    assert caught.value.message == "WebP images are not accepted; send JPEG or PNG"
    assert check_image(images.png, LIMIT, ("PNG",)).format == "PNG"


@pytest.mark.parametrize("marker", [b"<script>", b"<SCRIPT src=x>", b"<iframe", b"JavaScript:alert(1)"])
def test_images_carrying_script_are_refused(images: Images, marker: bytes) -> None:
    """Markup anywhere in an otherwise valid image (here after its end) makes it a polyglot."""
    with pytest.raises(ImageRejected) as caught:
        check_image(images.png + marker, LIMIT)
    assert (caught.value.code, "polyglot" in caught.value.message) == ("invalid_image", True)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [(made.corrupt_jpeg(), "starts like a JPEG"), (made.bad_crc_png(), "starts like a PNG")],
    ids=["jpeg", "png"],
)
def test_a_corrupt_header_is_named(data: bytes, fragment: str) -> None:
    """A file with the right magic bytes but a broken header says so."""
    with pytest.raises(ImageRejected) as caught:
        check_image(data, LIMIT)
    assert caught.value.code == "invalid_image" and fragment in caught.value.message
