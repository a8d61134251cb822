"""Preview images for the API: the stored preview of an image, or one made once from the original and stored.

The worker stores a preview beside each snapshot and final image it writes (impasto.shared.previews);
inputs, and images of jobs from before previews, have none until first asked for. Making one decodes
the original, which for a print-size PNG is a 45 MB pixel buffer: that decode reserves its size from
the process's DecodeBudget, as an upload's does, so preview requests cannot make a process decode
without bound; past the budget's wait they answer 503 with Retry-After.
"""

from __future__ import annotations

import io
import logging
from typing import IO

from PIL import Image

from impasto.api.decode_budget import DecodeBudget
from impasto.api.errors import ApiError, not_found
from impasto.api.images import EXTENSIONS, decoded_bytes
from impasto.shared.previews import RESIZABLE_MODES, encode_preview, preview_key, preview_size
from impasto.shared.storage import Storage

logger = logging.getLogger(__name__)

# Formats whose parsers may see a stored image: what the API accepts as uploads and the worker writes.
STORED_FORMATS = tuple(EXTENSIONS)
# EXIF orientation -> the transpose that shows the picture upright, as the engine's exif_transpose does.
ORIENTATIONS: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
EXIF_ORIENTATION = 0x0112


class PreviewUnavailable(Exception):
    """The stored original cannot be previewed (above the pixel limit, or it no longer decodes)."""


def open_preview(storage: Storage, key: str, max_pixels: int, budget: DecodeBudget) -> tuple[IO[bytes], int]:
    """The preview of the image under `key` as a stream and its length, made and stored first if there is none.

    KeyError if the original is missing; DecodeBusy if the budget stays spent; PreviewUnavailable if it cannot decode.
    """
    try:
        return storage.open(preview_key(key))
    except KeyError:
        pass
    data = make_preview(storage, key, max_pixels, budget)
    # A second request racing this one makes the same bytes: storage's atomic put keeps either whole.
    storage.put(preview_key(key), data)
    return io.BytesIO(data), len(data)


def make_preview(storage: Storage, key: str, max_pixels: int, budget: DecodeBudget) -> bytes:
    """Decode the original within the budget (a JPEG at the smallest scale that still covers the preview)."""
    stream, _size = storage.open(key)
    with stream:
        # A local file is read by Pillow as it decodes; S3's body cannot seek, so it is read whole first.
        source: IO[bytes] = stream if stream.seekable() else io.BytesIO(stream.read())
        try:
            with Image.open(source, formats=STORED_FORMATS) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise PreviewUnavailable(f"{width}x{height} is above the limit of {max_pixels} pixels")
                image.draft("RGB", preview_size(width, height))  # JPEG only: libjpeg's DCT scaling
                orientation = image.getexif().get(EXIF_ORIENTATION, 1)
                with budget.reserve(working_bytes(image)):
                    image.load()
                    data = encode_preview(image, upright=ORIENTATIONS.get(orientation))
        except PreviewUnavailable:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise PreviewUnavailable(f"the image has more than {max_pixels} pixels") from exc
        except (OSError, SyntaxError, ValueError) as exc:  # Pillow's decoders raise these for a damaged file
            logger.warning("stored image %s does not decode for a preview: %s", key, exc)
            raise PreviewUnavailable("the stored image does not decode") from exc
    return data


def working_bytes(image: Image.Image) -> int:
    """Pixel memory a preview takes: the decode, plus encode_preview's RGBA copy of a palette or other mode."""
    width, height = image.size
    return decoded_bytes(image) + (0 if image.mode in RESIZABLE_MODES else width * height * 4)


def unavailable(exc: PreviewUnavailable) -> ApiError:
    """The 409 for an image the API will not preview; the full image is still served."""
    return ApiError(409, "preview_unavailable", f"no preview of this image: {exc}; download it in full")


def missing_original(key: str) -> ApiError:
    """The 404 for an image that is recorded but gone from storage, as the full-size endpoint answers."""
    logger.warning("storage key %s is recorded but missing", key)
    return not_found("image")
