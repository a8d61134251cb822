"""Images made to test the upload checks: broken, huge, disguised, and unusual-but-valid ones."""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SCRIPT = b"<script>alert(document.cookie)</script>"
EXIF_ORIENTATION = 0x0112


def encode(image: Image.Image, image_format: str, **save: Any) -> bytes:
    """`image` saved in `image_format`."""
    buffer = io.BytesIO()
    image.save(buffer, image_format, **save)
    return buffer.getvalue()


def noise(size: tuple[int, int] = (128, 96)) -> Image.Image:
    """An RGB image that does not compress away, so a cut-off copy misses pixel data."""
    return Image.effect_noise(size, 64).convert("RGB")


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk with its CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_file(width: int, height: int, bit_depth: int, colour_type: int, idat: bytes) -> bytes:
    """A PNG from its IHDR fields and already-compressed pixel data."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return PNG_SIGNATURE + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header that claims a size, with almost no pixel data behind it."""
    return png_file(width, height, 8, 2, zlib.compress(b""))


def bomb_png(width: int, height: int) -> bytes:
    """A real decompression bomb: a single-colour 1-bit PNG whose pixel data is all there.

    20000x20000 is about 50 KB on disk and 400 MB once decoded.
    """
    row = b"\0" * (1 + (width + 7) // 8)  # filter byte, then the packed bits
    compressor = zlib.compressobj(9)
    rows_per_call = 256
    parts = [compressor.compress(row * min(rows_per_call, height - y)) for y in range(0, height, rows_per_call)]
    return png_file(width, height, 1, 0, b"".join(parts) + compressor.flush())


def truncated_jpeg() -> bytes:
    """A JPEG cut in the middle of its pixel data."""
    data = encode(noise(), "JPEG", quality=90)
    return data[: len(data) // 2]


def corrupt_jpeg() -> bytes:
    """A JPEG whose Huffman table has been overwritten."""
    data = bytearray(encode(noise(), "JPEG", quality=90))
    table = data.index(b"\xff\xc4")
    data[table + 4 : table + 40] = b"\xff" * 36
    return bytes(data)


def truncated_png() -> bytes:
    """A PNG cut in the middle of its pixel data."""
    data = encode(noise(), "PNG")
    return data[: len(data) // 2]


def corrupt_png() -> bytes:
    """A PNG whose compressed pixel data has been overwritten (its chunk CRC no longer checked)."""
    data = bytearray(encode(noise(), "PNG"))
    idat = data.index(b"IDAT")
    data[idat + 6 : idat + 200] = bytes(range(194))
    return bytes(data)


def bad_crc_png() -> bytes:
    """A PNG whose header chunk fails its CRC."""
    data = bytearray(encode(noise((16, 16)), "PNG"))
    data[29] ^= 0xFF  # IHDR's CRC: 8 signature + 8 length/type + 13 data bytes in
    return bytes(data)


def svg_with_script() -> bytes:
    """An SVG document that runs script, as a browser would open it."""
    return b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)">' + SCRIPT + b"</svg>"


def png_with_script(png: bytes) -> bytes:
    """A valid PNG that carries an HTML page in a text chunk: a PNG/HTML polyglot."""
    with Image.open(io.BytesIO(png)) as image:
        info = PngInfo()
        info.add_text("Comment", ("<html><body>" + SCRIPT.decode() + "</body></html>"))
        return encode(image, "PNG", pnginfo=info)


def html_then_png(png: bytes) -> bytes:
    """An HTML page with a PNG appended: a page first, an image only to a lenient reader."""
    return b"<!doctype html><html><body>" + SCRIPT + b"</body></html>\n" + png


def gif_with_script() -> bytes:
    """A GIF whose comment holds script: a GIF/JS polyglot."""
    return encode(Image.new("P", (8, 8)), "GIF", comment=SCRIPT)


def animated(image_format: str) -> bytes:
    """A two-frame animation (APNG or WebP)."""
    frames = [Image.new("RGB", (16, 16), colour) for colour in ("red", "blue")]
    return encode(frames[0], image_format, save_all=True, append_images=frames[1:])


def cmyk_jpeg() -> bytes:
    """A CMYK JPEG (print workflows) of pure cyan: RGB (0, 255, 255) once converted."""
    return encode(Image.new("CMYK", (40, 30), (255, 0, 0, 0)), "JPEG", quality=95)


def png16_grey(value: int = 32896) -> bytes:
    """A 16-bit greyscale PNG of one level (32896 is 128 in 8 bits)."""
    return encode(Image.new("I;16", (40, 30), value), "PNG")


def png16_rgb() -> bytes:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one, so it is built by hand)."""
    width, height = 20, 10
    pixel = struct.pack(">HHH", 65535, 32896, 0)  # orange: (255, 128, 0) in 8 bits
    raw = b"".join(b"\0" + pixel * width for _ in range(height))
    return png_file(width, height, 16, 2, zlib.compress(raw))


def exif_rotated_jpeg() -> bytes:
    """A 64x32 JPEG whose EXIF says "rotate 90 degrees clockwise to show" (orientation 6)."""
    image = Image.new("RGB", (64, 32), "white")
    image.paste((255, 0, 0), (0, 0, 32, 32))  # red on the left half, as stored
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    return encode(image, "JPEG", quality=95, exif=exif.tobytes())


def palette_png(transparent: bool = False) -> bytes:
    """A palette PNG of red; with `transparent`, its one colour is fully transparent."""
    image = Image.new("P", (24, 16), 0)
    image.putpalette([255, 0, 0] + [0, 0, 0] * 255)
    return encode(image, "PNG", **({"transparency": 0} if transparent else {}))


def rgba_png() -> bytes:
    """An RGBA PNG: the left half opaque blue, the right half fully transparent."""
    image = Image.new("RGBA", (32, 16), (0, 0, 255, 0))
    image.paste((0, 0, 255, 255), (0, 0, 16, 16))
    return encode(image, "PNG")


def la_png() -> bytes:
    """A greyscale-with-alpha PNG: black at half opacity."""
    return encode(Image.new("LA", (20, 20), (0, 128)), "PNG")


def webp_with_alpha() -> bytes:
    """A lossless WebP with a transparent half."""
    image = Image.new("RGBA", (20, 20), (0, 255, 0, 0))
    image.paste((0, 255, 0, 255), (0, 0, 10, 20))
    return encode(image, "WEBP", lossless=True)
