"""Previews: a small JPEG of each image the API serves, stored beside the original under a key of its own.

A print-size result (4096x2724) is a ~20 MB PNG; the web page shows it in a box 512 CSS px wide and
snapshots as 64 px thumbnails. The worker writes a preview when it stores a snapshot or the final
image (it holds the pixels already); the API makes one, once, for an image that has none (inputs,
jobs from before previews). Previews of a job's images live under the job's prefix, so deleting
the job or expiring its images deletes them too.
"""

from __future__ import annotations

import io

from PIL import Image

# The long side of a preview, in pixels: twice the page's 512 CSS px image box, so it stays sharp on
# a phone's or laptop's 2x screen, and still ~1/100 of a 4096 px PNG's bytes.
PREVIEW_MAX_SIDE = 1024
# JPEG quality of a preview: no visible blocking on painted textures at a fraction of the PNG's bytes.
PREVIEW_QUALITY = 85
PREVIEW_MEDIA_TYPE = "image/jpeg"
PREVIEW_SUFFIX = ".preview.jpg"
# Pasted under an image with transparency (a PNG or WebP input): JPEG has no alpha channel.
BACKGROUND = (255, 255, 255)


def preview_key(key: str) -> str:
    """The preview's key beside the original's: jobs/<id>/final.png -> jobs/<id>/final.preview.jpg.

    No original's key ends in .preview.jpg (uploads are <sha256>.<ext>, outputs .png), so none is overwritten.
    """
    stem = key.rsplit(".", 1)[0] if "." in key.rsplit("/", 1)[-1] else key
    return stem + PREVIEW_SUFFIX


def preview_size(width: int, height: int, max_side: int = PREVIEW_MAX_SIDE) -> tuple[int, int]:
    """The size with the long side at most `max_side`, keeping the aspect ratio; never larger than the image."""
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


# Modes that resize and encode as they are; any other is converted to RGBA first (a full-size copy).
RESIZABLE_MODES = ("RGB", "L", "RGBA")


def encode_preview(
    image: Image.Image, max_side: int = PREVIEW_MAX_SIDE, upright: Image.Transpose | None = None
) -> bytes:
    """The image shrunk to `max_side` on its long side (then turned by `upright`, if given), as JPEG.

    The image itself is not changed.
    """
    if image.mode not in RESIZABLE_MODES:
        image = image.convert("RGBA")  # palette, LA, 16-bit and CMYK alike: one mode that resizes well
    # reducing_gap: a cheap box reduction first, then Lanczos from ~3x the target; fast on 11 MP.
    small = image.resize(preview_size(*image.size, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    if upright is not None:
        small = small.transpose(upright)  # after the shrink: turning the small image is cheap
    if small.mode == "RGBA":
        flat = Image.new("RGB", small.size, BACKGROUND)
        flat.paste(small, mask=small.getchannel("A"))
        small = flat
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=PREVIEW_QUALITY, optimize=True)
    return buffer.getvalue()
