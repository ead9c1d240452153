"""Photo intake: detect the type from the bytes, refuse what we can't or shouldn't decode, clean the rest.

The kept copy has the EXIF orientation applied and carries no metadata at all (no EXIF, GPS, XMP,
IPTC, comments, ICC profile: colours are converted to sRGB first), re-encoded as JPEG, or as PNG
when the photo has real transparency. The pixel count is checked from the header, before decoding.
"""

from __future__ import annotations

import io
import math
import re
import struct
from dataclasses import dataclass, field
from functools import cache

import numpy as np
from PIL import Image, ImageCms

from narration.errors import ImageError

SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "HEIF")
MODEL_MAX_SIDE = 1600  # large enough for OCR of a page photo, small enough for fast models
JPEG_QUALITY = 90

_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"}
_AVIF_BRANDS = {b"avif", b"avis"}
_ORIENTATION_TAG = 0x0112
_TRANSPOSE = {
    2: (Image.Transpose.FLIP_LEFT_RIGHT,),
    3: (Image.Transpose.ROTATE_180,),
    4: (Image.Transpose.FLIP_TOP_BOTTOM,),
    5: (Image.Transpose.TRANSPOSE,),
    6: (Image.Transpose.ROTATE_270,),
    7: (Image.Transpose.TRANSVERSE,),
    8: (Image.Transpose.ROTATE_90,),
}
# Signatures of real image formats we deliberately don't accept (anything else is "not an image").
_UNSUPPORTED_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "BigTIFF"),
    (b"MM\x00+", "BigTIFF"),
    (b"8BPS", "PSD"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"\xff\x0a", "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
    (b"qoif", "QOI"),
    (b"DDS ", "DDS"),
    (b"v/1\x01", "OpenEXR"),
    (b"%PDF", "PDF"),
    (b"\x0a\x05\x01\x08", "PCX"),
    (b"P1", "PBM"), (b"P2", "PGM"), (b"P3", "PPM"), (b"P4", "PBM"), (b"P5", "PGM"), (b"P6", "PPM"),
)


@dataclass(frozen=True, eq=False)
class PreparedImage:
    """A validated, cleaned photo: bytes to keep, and a smaller RGB copy for the models."""

    data: bytes
    content_type: str
    format: str  # the source format: JPEG, PNG, WEBP, GIF or HEIF
    width: int
    height: int
    model_image: Image.Image = field(repr=False)

    @property
    def orientation(self) -> str:
        """"landscape", "portrait" or "square" (within 5%)."""
        ratio = self.width / self.height
        if ratio > 1.05:
            return "landscape"
        if ratio < 1 / 1.05:
            return "portrait"
        return "square"


def detect_format(data: bytes) -> str:
    """Name the image format from its first bytes; raise ImageError for anything else."""
    head = bytes(data[:64])
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[4:8] == b"ftyp":
        brands = _ftyp_brands(bytes(data[:512]))
        if brands & _HEIF_BRANDS:
            return "HEIF"
        if brands & _AVIF_BRANDS:
            raise ImageError("UNSUPPORTED_FORMAT", "AVIF images are not supported; use JPEG, PNG, WebP, GIF or HEIC")
    for signature, name in _UNSUPPORTED_SIGNATURES:
        if head.startswith(signature):
            raise ImageError(
                "UNSUPPORTED_FORMAT", f"{name} images are not supported; use JPEG, PNG, WebP, GIF or HEIC"
            )
    stripped = head.lstrip()
    if stripped.startswith((b"<svg", b"<?xml")) and b"<svg" in bytes(data[:4096]):
        raise ImageError("UNSUPPORTED_FORMAT", "SVG images are not supported; use JPEG, PNG, WebP, GIF or HEIC")
    raise ImageError("NOT_AN_IMAGE", "the file is not an image")


def _ftyp_brands(head: bytes) -> set[bytes]:
    """Major and compatible brands of an ISO-BMFF `ftyp` box."""
    size = struct.unpack(">I", head[:4])[0]
    end = min(max(size, 16), len(head))
    brands = {head[8:12]}
    brands.update(head[i : i + 4] for i in range(16, end - 3, 4))
    return brands


def prepare_image(
    data: bytes,
    *,
    max_bytes: int = 25 * 1024 * 1024,
    max_pixels: int = 50_000_000,
    model_max_side: int = MODEL_MAX_SIDE,
) -> PreparedImage:
    """Validate and clean a photo. Raises ImageError with a stable code; pure CPU, synchronous."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError("photo must be bytes")
    data = bytes(data)
    if not data:
        raise ImageError("NOT_AN_IMAGE", "the file is empty")
    if len(data) > max_bytes:
        raise ImageError(
            "FILE_TOO_LARGE", f"the file is {len(data) / 1e6:.1f} MB; at most {max_bytes / 1e6:g} MB is accepted"
        )
    fmt = detect_format(data)
    if fmt == "JPEG":
        fast = _lossless_jpeg(data, max_pixels, model_max_side)
        if fast is not None:
            return fast
    img = _open_heif(data, max_pixels) if fmt == "HEIF" else _open_pillow(data, fmt, max_pixels)
    img = _apply_orientation(img)
    img = _to_srgb(img)
    img = _normalise_mode(img)
    img.info = {}  # nothing from the source travels on (Pillow's savers read some keys from here)

    alpha = img.mode == "RGBA"
    out = _encode(img, alpha)
    model_image = _model_copy(img, model_max_side)
    return PreparedImage(
        data=out,
        content_type="image/png" if alpha else "image/jpeg",
        format=fmt,
        width=img.width,
        height=img.height,
        model_image=model_image,
    )


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageError("CORRUPT_IMAGE", "the image has no pixels")
    if width * height > max_pixels:
        raise ImageError(
            "TOO_MANY_PIXELS",
            f"the image has {width * height / 1e6:.0f} megapixels; at most {max_pixels / 1e6:g} are accepted",
        )


def _open_pillow_header(data: bytes, fmt: str, max_pixels: int) -> Image.Image:
    """Read the header only and check the pixel count; nothing is decoded yet."""
    try:
        img = Image.open(io.BytesIO(data), formats=[fmt])
    except Image.DecompressionBombError as exc:
        raise ImageError("TOO_MANY_PIXELS", "the image has too many pixels") from exc
    except Exception as exc:  # Pillow raises many types for damaged headers
        raise ImageError("CORRUPT_IMAGE", f"the {fmt} image is damaged and cannot be read") from exc
    _check_pixels(img.size, max_pixels)
    return img


def _load(img: Image.Image, fmt: str) -> None:
    try:
        img.load()  # GIF and animated WebP: the first frame
    except Image.DecompressionBombError as exc:
        raise ImageError("TOO_MANY_PIXELS", "the image has too many pixels") from exc
    except Exception as exc:
        raise ImageError("CORRUPT_IMAGE", f"the {fmt} image is truncated or damaged") from exc


def _open_pillow(data: bytes, fmt: str, max_pixels: int) -> Image.Image:
    img = _open_pillow_header(data, fmt, max_pixels)
    if fmt == "JPEG" and img.mode == "RGB" and "icc_profile" not in img.info:
        # Decode straight to YCbCr: saves two colour conversions on large photos.
        img.draft("YCbCr", img.size)
    _load(img, fmt)
    return img


def _open_heif(data: bytes, max_pixels: int) -> Image.Image:
    import pillow_heif  # imported here: only HEIC uploads pay for it

    try:
        heif = pillow_heif.open_heif(data, convert_hdr_to_8bit=True)
        size = heif.size
    except Exception as exc:
        raise ImageError("CORRUPT_IMAGE", "the HEIF image is damaged and cannot be read") from exc
    _check_pixels(size, max_pixels)
    try:
        # libheif applies the rotation/mirroring boxes and resets EXIF orientation itself.
        img: Image.Image = heif.to_pillow()
        img.load()
    except Exception as exc:
        raise ImageError("CORRUPT_IMAGE", "the HEIF image is truncated or damaged") from exc
    return img


def _lossless_jpeg(data: bytes, max_pixels: int, model_max_side: int) -> PreparedImage | None:
    """Upright JPEG without a colour profile: drop the metadata segments, keep the compressed pixels.

    Lossless and several times faster than decode + re-encode. The whole stream is still decoded
    (at reduced scale, for the model copy), so damaged files are caught just the same. Returns None
    when the photo needs pixel work (rotation, colour conversion, CMYK) or the segments look odd.
    """
    img = _open_pillow_header(data, "JPEG", max_pixels)
    if img.mode not in ("L", "RGB") or "icc_profile" in img.info or _orientation(img) != 1:
        return None
    width, height = img.size
    ratio = max(1.0, max(img.size) / model_max_side)
    img.draft(img.mode, (math.ceil(width / ratio), math.ceil(height / ratio)))
    _load(img, "JPEG")
    try:
        stripped = strip_jpeg_metadata(data)
    except ValueError:
        return None
    img.info = {}
    return PreparedImage(
        data=stripped,
        content_type="image/jpeg",
        format="JPEG",
        width=width,
        height=height,
        model_image=_model_copy(img, model_max_side),
    )


_KEEP_JPEG_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF,
                      0xC4, 0xCC, 0xDB, 0xDD, 0xDA, 0xEE}  # frames, tables, restart interval, scan, Adobe


# 0xFF followed by anything but stuffing (00), a restart marker (D0-D7) or fill (FF) ends a scan.
_NEXT_MARKER = re.compile(rb"\xff(?=[^\x00\xd0-\xd7\xff])")


def strip_jpeg_metadata(data: bytes) -> bytes:
    """Rebuild a JPEG from its coding segments only: no APPn (but Adobe's colour flag), no comments,
    nothing after the end-of-image marker. Raises ValueError on anything unexpected."""
    out = bytearray(b"\xff\xd8")
    i, n = 2, len(data)
    while i < n:
        if data[i] != 0xFF:
            raise ValueError("expected a marker")
        while i < n and data[i] == 0xFF:  # fill bytes
            i += 1
        if i >= n:
            break
        marker = data[i]
        i += 1
        if marker == 0xD9:
            out += b"\xff\xd9"
            return bytes(out)
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            out += bytes((0xFF, marker))
            continue
        if i + 2 > n:
            break
        length = int.from_bytes(data[i : i + 2], "big")
        if length < 2 or i + length > n:
            raise ValueError("bad segment length")
        if marker in _KEEP_JPEG_MARKERS:
            out += bytes((0xFF, marker)) + data[i : i + length]
        elif not (0xE0 <= marker <= 0xEF or marker == 0xFE):
            raise ValueError(f"unexpected marker {marker:#x}")
        i += length
        if marker == 0xDA:  # entropy-coded data runs to the next marker that isn't stuffing or a restart
            found = _NEXT_MARKER.search(data, i)
            if found is None:
                raise ValueError("the scan never ends")
            j = found.start()
            out += data[i:j]
            i = j
    raise ValueError("no end-of-image marker")


def _orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # a broken EXIF block must not sink an otherwise good photo
        return 1
    return value if isinstance(value, int) else 1


def _apply_orientation(img: Image.Image) -> Image.Image:
    for method in _TRANSPOSE.get(_orientation(img), ()):
        img = img.transpose(method)
    return img


def _to_srgb(img: Image.Image) -> Image.Image:
    """Convert pixels to sRGB when an ICC profile is attached, so dropping the profile keeps the colours."""
    icc = img.info.get("icc_profile")
    if not icc or img.mode not in ("RGB", "RGBA", "CMYK"):
        return img
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        mode = "RGBA" if img.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(img, src, _srgb_profile(), outputMode=mode)
    except Exception:  # an unreadable profile: keep the pixels as they are
        return img
    return converted if converted is not None else img


@cache
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _normalise_mode(img: Image.Image) -> Image.Image:
    """Reduce to L, RGB, YCbCr (JPEG fast path) or RGBA (only when transparency is really used)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        low, high = float(arr.min()), float(arr.max())
        if img.mode.startswith("I;16") or (low >= 0 and high <= 65535 and high > 255):
            arr = arr / 257.0  # 16-bit samples
        elif low < 0 or high > 255:
            arr = (arr - low) * (255.0 / ((high - low) or 1.0))  # unknown range: stretch
        return Image.fromarray(arr.clip(0, 255).round().astype(np.uint8), "L")
    if img.mode in ("L", "RGB", "YCbCr") and "transparency" not in img.info:
        return img
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
    if has_alpha:
        rgba = img.convert("RGBA")
        lowest_alpha = rgba.getchannel("A").getextrema()[0]
        if isinstance(lowest_alpha, int | float) and lowest_alpha < 255:
            return rgba
        return rgba.convert("RGB")
    return img.convert("RGB")


def _encode(img: Image.Image, alpha: bool) -> bytes:
    out = io.BytesIO()
    if alpha:
        img.save(out, "PNG", compress_level=6)
    else:
        img.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def _model_copy(img: Image.Image, max_side: int) -> Image.Image:
    """An RGB copy no larger than max_side; transparency is shown over white, as viewers do."""
    ratio = max(img.size) / max_side
    if ratio <= 1:
        small = img
    elif ratio >= 2:
        # A box reduction by a whole factor is several times faster than a filtered resize of 12 MP.
        small = img.reduce(math.ceil(ratio))
    else:
        size = (max(1, round(img.width / ratio)), max(1, round(img.height / ratio)))
        small = img.resize(size, Image.Resampling.BILINEAR)
    if small.mode == "RGBA":
        background = Image.new("RGB", small.size, (255, 255, 255))
        background.paste(small, mask=small.getchannel("A"))
        return background
    if small.mode != "RGB":
        return small.convert("RGB")
    return small.copy() if small is img else small
