"""Check an uploaded image with Pillow: format, pixel count before decoding, then a full decode."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

# Formats the engine accepts, and the file extension each is stored under.
EXTENSIONS: dict[str, str] = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
# Pillow's JPEG opener names a JPEG that carries extra pictures (many phone photos) "MPO";
# the first picture is an ordinary JPEG and is what the engine reads, so it counts as one.
ALIASES: dict[str, str] = {"MPO": "JPEG"}
ACCEPTED = "JPEG, PNG or WebP"


class ImageRejected(ValueError):
    """An upload that is not an image impasto accepts; `code` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class CheckedImage:
    """An upload that decoded cleanly: its original bytes and what Pillow found."""

    data: bytes
    format: str
    width: int
    height: int

    @property
    def extension(self) -> str:
        """The storage extension, from the detected format (never the client's filename)."""
        return EXTENSIONS[self.format]


def check_image(data: bytes, max_pixels: int) -> CheckedImage:
    """Decode `data` fully, refusing other formats, animations, and more than `max_pixels`."""
    if not data:
        raise ImageRejected("invalid_image", "the file is empty")
    try:
        # Only the accepted formats' parsers see the bytes on the way in.
        with Image.open(io.BytesIO(data), formats=tuple(EXTENSIONS)) as image:
            image_format = ALIASES.get(image.format or "", image.format or "")
            width, height = image.size
            # Checked before load(): the header alone says how much memory a decode would take.
            if width * height > max_pixels:
                raise ImageRejected(
                    "image_too_large", f"{width}x{height} is {width * height} pixels, above the limit of {max_pixels}"
                )
            if image.format != "MPO" and getattr(image, "n_frames", 1) > 1:
                raise ImageRejected("unsupported_format", "animated images are not supported; send a still image")
            image.load()  # a truncated or corrupt file fails here, not later in the worker
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's process-wide guard (Image.MAX_IMAGE_PIXELS) can fire inside open(), before
        # our own per-call limit is checked: a header claiming billions of pixels. Its warning
        # is only an exception where warnings are errors; our limit (below Pillow's default
        # unless raised in settings) then refuses the image anyway.
        raise ImageRejected("image_too_large", f"the image has more than {max_pixels} pixels") from exc
    except UnidentifiedImageError as exc:
        raise _unidentified(data) from exc
    except Exception as exc:  # Pillow's decoders raise many types (OSError, SyntaxError, ValueError...)
        raise ImageRejected("invalid_image", f"the image could not be decoded: {exc}") from exc
    return CheckedImage(data=data, format=image_format, width=width, height=height)


def _unidentified(data: bytes) -> ImageRejected:
    """Why an upload is not an accepted image: another format (415), or not an image (422)."""
    other = sniff_format(data)
    if other is not None:
        return ImageRejected("unsupported_format", f"{other} images are not supported; send {ACCEPTED}")
    return ImageRejected("invalid_image", f"the file is not a {ACCEPTED} image")


def sniff_format(data: bytes) -> str | None:
    """The format Pillow names for `data` from its header, without decoding pixels; None if none."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.format
    except Exception:  # anything a header parser raises just means "not recognised"
        return None
