"""Check an uploaded image with Pillow: format, pixel count before decoding, then a full decode.

The format is what the bytes are, never what the client's filename or content type says.
The decode is bounded in memory: a JPEG is decoded at 1/8 scale (every byte of it is still
read and entropy-decoded, so a corrupt or truncated file still fails), and every decode first
reserves its pixel buffer's size from the process's DecodeBudget.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from impasto.api.decode_budget import DecodeBudget, DecodeBusy
from impasto.shared.settings import UPLOAD_FORMATS

# Formats the engine accepts, and the file extension each is stored under.
EXTENSIONS: dict[str, str] = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
# Their media types, for the OpenAPI document (the API itself never trusts a part's content type).
MEDIA_TYPES: dict[str, str] = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
# Bytes a pixel takes in Pillow's memory by mode: one for these, four for RGB (stored as RGBX),
# RGBA, LA, CMYK, I, F; two-byte I;16 modes are counted as four too (an over-estimate is safe).
ONE_BYTE_MODES = ("1", "L", "P")
# Pillow's JPEG opener names a JPEG that carries extra pictures (many phone photos) "MPO";
# the first picture is an ordinary JPEG and is what the engine reads, so it counts as one.
ALIASES: dict[str, str] = {"MPO": "JPEG"}
NAMES: dict[str, str] = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP"}
# Script an image has no use for: a file that carries it is made to be read as a web page too
# (an HTML/SVG polyglot). Long enough never to turn up by chance in compressed pixel data
# (about 2^-50 per byte offset, case-insensitive); shorter tags such as "<svg" would.
SCRIPT_MARKERS: tuple[bytes, ...] = (b"<script", b"<iframe", b"javascript:")
# Formats named in a refusal ("GIF images are not accepted") rather than "not an image".
SNIFFED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "ICO", "PSD", "JPEG2000")


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


def accepted_names(formats: Sequence[str]) -> str:
    """The accepted formats for messages, e.g. 'JPEG, PNG or WebP'."""
    names = [NAMES[name] for name in formats]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def check_image(
    data: bytes, max_pixels: int, formats: Sequence[str] = UPLOAD_FORMATS, budget: DecodeBudget | None = None
) -> CheckedImage:
    """Decode `data` fully, refusing formats not in `formats`, animations, script, and more than `max_pixels`.

    With a `budget`, the decode waits for its share of it (DecodeBusy if it waits too long).
    """
    if not data:
        raise ImageRejected("invalid_image", "the file is empty")
    try:
        # Only the accepted formats' parsers see the bytes on the way in.
        with Image.open(io.BytesIO(data), formats=tuple(formats)) as image:
            image_format = ALIASES.get(image.format or "", image.format or "")
            width, height = image.size
            # Checked before load(): the header alone says how much memory a decode would take.
            if width * height > max_pixels:
                raise ImageRejected(
                    "image_too_large", f"{width}x{height} is {width * height} pixels, above the limit of {max_pixels}"
                )
            frames = getattr(image, "n_frames", 1)
            if image.format != "MPO" and frames > 1:
                message = f"animated images are not accepted (this one has {frames} frames); send a single still image"
                raise ImageRejected("unsupported_format", message)
            if carries_script(data):  # before the decode: no need to spend it on a polyglot
                raise ImageRejected(
                    "invalid_image",
                    "the file carries HTML or script as well as an image (a polyglot); send a plain image",
                )
            decode_smaller(image)
            with reserved(budget, decoded_bytes(image)):
                image.load()  # a truncated or corrupt file fails here, not later in the worker
    except (ImageRejected, DecodeBusy):
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's process-wide guard (Image.MAX_IMAGE_PIXELS) can fire inside open(), before
        # our own per-call limit is checked: a header claiming billions of pixels. Its warning
        # is only an exception where warnings are errors; our limit (below Pillow's default
        # unless raised in settings) then refuses the image anyway.
        raise ImageRejected("image_too_large", f"the image has more than {max_pixels} pixels") from exc
    except UnidentifiedImageError as exc:
        raise _unidentified(data, formats) from exc
    except Exception as exc:  # Pillow's decoders raise many types (OSError, SyntaxError, ValueError...)
        raise ImageRejected("invalid_image", f"the image could not be decoded: {exc}") from exc
    return CheckedImage(data=data, format=image_format, width=width, height=height)


def decode_smaller(image: Image.Image) -> None:
    """Have a JPEG decode at 1/8 scale (libjpeg's DCT scaling): 1/64 of the memory, the same checks.

    PNG and WebP have no such mode in Pillow; their decode is full size, bounded by the budget.
    """
    if image.format in ("JPEG", "MPO"):
        image.draft(image.mode, (1, 1))  # the smallest scale libjpeg offers (1/8) for any size >= 8 px


def decoded_bytes(image: Image.Image) -> int:
    """The size of the pixel buffer image.load() will allocate (after any draft)."""
    width, height = image.size
    return width * height * (1 if image.mode in ONE_BYTE_MODES else 4)


@contextmanager
def reserved(budget: DecodeBudget | None, nbytes: int) -> Iterator[None]:
    """Hold `nbytes` of the budget for the block; no bound without a budget."""
    with budget.reserve(nbytes) if budget is not None else nullcontext():
        yield


def carries_script(data: bytes) -> bool:
    """True if the bytes hold script markup anywhere: in metadata, comments, or after the image."""
    lowered = data.lower()
    return any(marker in lowered for marker in SCRIPT_MARKERS)


def _unidentified(data: bytes, formats: Sequence[str]) -> ImageRejected:
    """Why an upload is not an accepted image: another format (415), or not an image (422)."""
    other = sniff_format(data)
    accepted = accepted_names(formats)
    if other is not None:
        return ImageRejected(
            "unsupported_format",
            f"{NAMES.get(ALIASES.get(other, other), other)} images are not accepted; send {accepted}",
        )
    claimed = signature_format(data)
    if claimed is not None and claimed in formats:
        return ImageRejected(
            "invalid_image", f"the file starts like a {NAMES[claimed]} image but its header is corrupt"
        )
    return ImageRejected("invalid_image", f"the file is not a {accepted} image")


def signature_format(data: bytes) -> str | None:
    """The accepted format whose magic bytes `data` starts with, if any (for messages only)."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def sniff_format(data: bytes) -> str | None:
    """The format Pillow names for `data` from its header, without decoding pixels; None if none."""
    try:
        # Only common formats' header parsers, for the error message: no need to expose the
        # rarer plugins to hostile bytes just to name them.
        with Image.open(io.BytesIO(data), formats=SNIFFED_FORMATS) as image:
            return image.format
    except Exception:  # anything a header parser raises just means "not recognised"
        return None
