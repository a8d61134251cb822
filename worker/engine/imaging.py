"""Images in and out: Pillow <-> tensors of RGB pixels in 0..255, resizing, and colour spaces."""

from __future__ import annotations

import io
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from impasto.worker.engine.errors import EngineError

# ITU-R BT.601 full-range RGB -> YCbCr, as JPEG and Pillow use it.
_RGB_TO_YCBCR = torch.tensor(
    [
        [0.299, 0.587, 0.114],
        [-0.168736, -0.331264, 0.5],
        [0.5, -0.418688, -0.081312],
    ]
)
_CHROMA_OFFSET = torch.tensor([0.0, 128.0, 128.0]).view(1, 3, 1, 1)


def png_bytes(image: Image.Image) -> bytes:
    """Encode an image as PNG (what storage keeps of every snapshot and result)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def open_image(source: str | Path | Image.Image) -> Image.Image:
    """An RGB Pillow image from a path or an image, EXIF orientation applied, alpha on white."""
    try:
        if isinstance(source, Image.Image):
            image = ImageOps.exif_transpose(source)
        else:
            with Image.open(source) as opened:
                image = ImageOps.exif_transpose(opened)  # a loaded copy, so the file can close
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise EngineError(f"cannot read image {source}: {exc}") from exc
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA", "P") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: scale to 8 bits rather than let convert() clip at 255.
        image = image.point(lambda v: v / 257).convert("L")
    return image.convert("RGB")


def fit_long_side(width: int, height: int, long_side: int) -> tuple[int, int]:
    """(width, height) scaled so the longer side is `long_side`, at least 1 px each."""
    scale = long_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def to_tensor(image: Image.Image, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Pillow RGB image (optionally resized to (width, height)) to a float (1, 3, H, W) in 0..255."""
    if size is not None and image.size != size:
        image = image.resize(size, Image.Resampling.LANCZOS)
    data = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    return data.view(image.height, image.width, 3).permute(2, 0, 1).unsqueeze(0).float().contiguous()


def to_image(pixels: torch.Tensor) -> Image.Image:
    """A (1, 3, H, W) tensor in 0..255 to an 8-bit Pillow RGB image (rounded, clipped)."""
    array = pixels.detach()[0].clamp(0, 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().cpu()
    return Image.frombytes("RGB", (array.shape[1], array.shape[0]), bytes(array.numpy().data))


def resize(pixels: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bicubic resize of a (B, C, H, W) tensor, kept in 0..255."""
    if pixels.shape[-2:] == (height, width):
        return pixels
    return F.interpolate(pixels, size=(height, width), mode="bicubic", align_corners=False).clamp(0, 255)


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB 0..255 to YCbCr 0..255 (BT.601 full range)."""
    matrix = _RGB_TO_YCBCR.to(rgb)
    return torch.einsum("ij,bjhw->bihw", matrix, rgb) + _CHROMA_OFFSET.to(rgb)


def ycbcr_to_rgb(ycbcr: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) YCbCr 0..255 back to RGB 0..255 (not clipped)."""
    matrix = torch.linalg.inv(_RGB_TO_YCBCR).to(ycbcr)
    return torch.einsum("ij,bjhw->bihw", matrix, ycbcr - _CHROMA_OFFSET.to(ycbcr))


def luminance_image(rgb: torch.Tensor) -> torch.Tensor:
    """The luminance of an RGB image as a grey RGB image (Y in all three channels)."""
    return rgb_to_ycbcr(rgb)[:, :1].expand(-1, 3, -1, -1).contiguous()


def match_luminance(style_grey: torch.Tensor, content_grey: torch.Tensor) -> torch.Tensor:
    """Shift and scale the style's luminance to the content's mean and deviation (Gatys 2017, §3.2)."""
    s_mean, s_std = style_grey.mean(), style_grey.std().clamp_min(1e-3)
    c_mean, c_std = content_grey.mean(), content_grey.std()
    return ((style_grey - s_mean) * (c_std / s_std) + c_mean).clamp(0, 255)


def with_chroma_of(luminance_rgb: torch.Tensor, chroma_source: torch.Tensor) -> torch.Tensor:
    """Combine the luminance of one RGB image with the Cb/Cr of another (same size)."""
    y = rgb_to_ycbcr(luminance_rgb)[:, :1]
    cbcr = rgb_to_ycbcr(chroma_source)[:, 1:]
    return ycbcr_to_rgb(torch.cat([y, cbcr], dim=1)).clamp(0, 255)
