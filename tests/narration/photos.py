"""Test photos, made here: drawn with Pillow, or public-domain samples shipped inside scikit-image."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageFont

GPS_IFD = 0x8825
ORIENTATION = 0x0112


def encode(image: Image.Image, fmt: str = "JPEG", **params: object) -> bytes:
    out = io.BytesIO()
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.from_pillow(image).save(out, quality=80, **params)
    else:
        image.save(out, fmt, **params)
    return out.getvalue()


def sample(name: str) -> Image.Image:
    """A scikit-image sample (astronaut, chelsea, coffee: NASA / public-domain photos)."""
    data = pytest.importorskip("skimage.data")
    return Image.fromarray(getattr(data, name)()).convert("RGB")


def two_faces() -> Image.Image:
    face = sample("astronaut")
    canvas = Image.new("RGB", (1024, 512))
    canvas.paste(face, (0, 0))
    canvas.paste(face.transpose(Image.Transpose.FLIP_LEFT_RIGHT), (512, 0))
    return canvas


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)  # Pillow's bundled font: no system fonts needed


def document(lines: tuple[str, ...] = ("Quarterly Report 2024", "Sales grew by twelve percent.",
                                        "Meeting on Friday at 10 am.")) -> Image.Image:
    page = Image.new("RGB", (1200, 160 + 110 * len(lines)), "white")
    draw = ImageDraw.Draw(page)
    for i, line in enumerate(lines):
        draw.text((60, 80 + 110 * i), line, fill="black", font=font(48 if i == 0 else 40))
    return page


def sign(text: str = "OPEN") -> Image.Image:
    """A shop sign: white letters on a red board in a blue-grey street-ish scene."""
    img = Image.new("RGB", (900, 600), (70, 90, 120))
    draw = ImageDraw.Draw(img)
    draw.rectangle((200, 200, 700, 400), fill=(180, 20, 30))
    draw.text((260, 240), text, fill="white", font=font(110))
    return img


def shapes() -> Image.Image:
    img = Image.new("RGB", (800, 600), (240, 240, 235))
    draw = ImageDraw.Draw(img)
    draw.ellipse((80, 80, 380, 380), fill=(30, 80, 200))
    draw.rectangle((420, 200, 720, 520), fill=(240, 200, 20))
    draw.polygon([(200, 560), (300, 400), (400, 560)], fill=(30, 160, 60))
    return img


def plain(colour: tuple[int, int, int] = (200, 30, 30)) -> Image.Image:
    return Image.new("RGB", (800, 600), colour)


def dark(image: Image.Image) -> Image.Image:
    return image.point(lambda v: v * 0.08)


def blurred(image: Image.Image) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(6))


def with_exif(image: Image.Image, orientation: int = 1, gps: bool = True, **params: object) -> bytes:
    """A JPEG carrying orientation, camera make, GPS position and a comment."""
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[0x010F] = "TestCam Inc."  # Make
    if gps:
        exif.get_ifd(GPS_IFD).update({1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)})
    return encode(image, "JPEG", exif=exif, comment=b"secret comment", **params)


def orientation_probe() -> Image.Image:
    """Landscape 300x200: left half red, right half blue, so a rotation is visible in the pixels."""
    img = Image.new("RGB", (300, 200), (220, 20, 20))
    ImageDraw.Draw(img).rectangle((150, 0, 299, 199), fill=(20, 20, 220))
    return img


def png_bomb(width: int = 10_000, height: int = 6_000) -> bytes:
    """A real decompression bomb: 60 megapixels of zeros in about 60 kB, written row by row."""
    raw = zlib.compressobj(9)
    row = b"\x00" + b"\x00" * width  # filter byte + one grey byte per pixel
    body = b"".join(raw.compress(row) for _ in range(height)) + raw.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def jpeg_segments(data: bytes) -> list[int]:
    """Marker bytes of every segment before the first scan (APP1 = 0xE1 is EXIF/XMP, 0xFE a comment)."""
    markers, i = [], 2
    while i < len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        markers.append(marker)
        if marker == 0xDA:
            break
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return markers


def png_chunks(data: bytes) -> list[bytes]:
    chunks, i = [], 8
    while i < len(data):
        length = int.from_bytes(data[i : i + 4], "big")
        chunks.append(data[i + 4 : i + 8])
        i += 12 + length
    return chunks


def noise_photo(width: int = 4000, height: int = 3000, seed: int = 0) -> Image.Image:
    """Photo-like content (gradients and grain) that compresses like a real 12 MP camera JPEG."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width * 255, y / height * 255, (x + y) / (width + height) * 255], axis=-1)
    return Image.fromarray((base + rng.normal(0, 12, base.shape)).clip(0, 255).astype(np.uint8))
