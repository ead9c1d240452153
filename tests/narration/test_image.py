"""Photo intake: formats from bytes, every rejection code, orientation, and metadata removal."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageCms

from narration import ImageError, PreparedImage, prepare_image
from narration.image import detect_format, strip_jpeg_metadata
from tests.narration import photos


def reopen(prepared: PreparedImage) -> Image.Image:
    img = Image.open(io.BytesIO(prepared.data))
    img.load()
    return img


def code_of(data: bytes, **limits: int) -> str:
    with pytest.raises(ImageError) as caught:
        prepare_image(data, **limits)
    return caught.value.code


@pytest.mark.parametrize(
    ("fmt", "params", "expected"),
    [
        ("JPEG", {}, "JPEG"),
        ("PNG", {}, "PNG"),
        ("WEBP", {"quality": 80}, "WEBP"),
        ("GIF", {}, "GIF"),
        ("HEIF", {}, "HEIF"),
    ],
)
def test_supported_formats_are_detected_from_bytes(fmt: str, params: dict[str, object], expected: str) -> None:
    data = photos.encode(photos.shapes(), fmt, **params)
    prepared = prepare_image(data)
    assert prepared.format == expected
    assert (prepared.width, prepared.height) == (800, 600)
    assert prepared.content_type == "image/jpeg"
    assert reopen(prepared).format == "JPEG"
    assert prepared.model_image.mode == "RGB"


def test_file_name_plays_no_part() -> None:
    # prepare_image never sees a name; detection works on content alone, whatever the caller called it.
    assert detect_format(photos.encode(photos.shapes(), "PNG")) == "PNG"
    assert detect_format(photos.encode(photos.shapes(), "JPEG")) == "JPEG"


def test_gif_uses_the_first_frame() -> None:
    frames = [photos.plain((200, 0, 0)), photos.plain((0, 0, 200))]
    data = photos.encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    pixel = prepare_image(data).model_image.getpixel((10, 10))
    assert isinstance(pixel, tuple) and pixel[0] > 150 and pixel[2] < 50


def test_not_an_image() -> None:
    assert code_of(b"hello, this is plain text and not a picture") == "NOT_AN_IMAGE"
    assert code_of(b"") == "NOT_AN_IMAGE"
    assert code_of(b"%!PS-Adobe-3.0\n") == "NOT_AN_IMAGE"


@pytest.mark.parametrize("fmt", ["BMP", "TIFF"])
def test_unsupported_formats(fmt: str) -> None:
    assert code_of(photos.encode(photos.shapes(), fmt)) == "UNSUPPORTED_FORMAT"


def test_unsupported_svg_and_pdf() -> None:
    assert code_of(b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>') == "UNSUPPORTED_FORMAT"
    assert code_of(b"%PDF-1.7\n...") == "UNSUPPORTED_FORMAT"


def test_file_too_large() -> None:
    data = photos.encode(photos.shapes(), "JPEG")
    assert code_of(data, max_bytes=len(data) - 1) == "FILE_TOO_LARGE"
    assert prepare_image(data, max_bytes=len(data)).width == 800


def test_real_decompression_bomb_is_refused_from_the_header() -> None:
    bomb = photos.png_bomb()  # 60 MP of zeros
    assert len(bomb) < 200_000
    assert code_of(bomb) == "TOO_MANY_PIXELS"  # default limit: 50 MP
    # Proof that the check comes before decoding: a bomb with its pixel data cut off is still a bomb.
    assert code_of(bomb[:2_000]) == "TOO_MANY_PIXELS"


def test_pixel_limit_is_configurable() -> None:
    data = photos.encode(photos.shapes(), "PNG")
    assert code_of(data, max_pixels=800 * 600 - 1) == "TOO_MANY_PIXELS"


def test_truncated_jpeg_is_corrupt() -> None:
    data = photos.encode(photos.noise_photo(640, 480), "JPEG", quality=90)
    assert code_of(data[: len(data) // 2]) == "CORRUPT_IMAGE"


def test_truncated_png_and_heif_are_corrupt() -> None:
    png = photos.encode(photos.noise_photo(640, 480), "PNG")
    assert code_of(png[: len(png) // 2]) == "CORRUPT_IMAGE"
    heif = photos.encode(photos.noise_photo(640, 480), "HEIF")
    assert code_of(heif[: len(heif) // 2]) == "CORRUPT_IMAGE"


def test_garbage_after_a_valid_signature_is_corrupt() -> None:
    assert code_of(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8) == "CORRUPT_IMAGE"
    assert code_of(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64) == "CORRUPT_IMAGE"


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied(orientation: int) -> None:
    data = photos.with_exif(photos.orientation_probe(), orientation=orientation, quality=95)
    prepared = prepare_image(data)
    img = reopen(prepared).convert("RGB")
    if orientation == 3:  # 180 degrees: red is now on the right
        assert (prepared.width, prepared.height) == (300, 200)
        assert img.getpixel((250, 100))[0] > 150
    elif orientation == 6:  # displayed rotated 90 clockwise: red (was left) is now on top
        assert (prepared.width, prepared.height) == (200, 300)
        assert img.getpixel((100, 50))[0] > 150 and img.getpixel((100, 250))[2] > 150
    else:  # 8: 90 counter-clockwise: red at the bottom
        assert (prepared.width, prepared.height) == (200, 300)
        assert img.getpixel((100, 250))[0] > 150
    assert prepared.orientation == ("landscape" if orientation == 3 else "portrait")


@pytest.mark.parametrize("orientation", [1, 6])
def test_all_metadata_is_removed_from_jpeg(orientation: int) -> None:
    data = photos.with_exif(photos.shapes(), orientation=orientation)
    assert b"Exif" in data and b"TestCam" in data and b"secret comment" in data
    out = prepare_image(data).data
    for needle in (b"Exif", b"TestCam", b"secret comment", b"http://ns.adobe.com/xap", b"ICC_PROFILE"):
        assert needle not in out
    segments = photos.jpeg_segments(out)
    # No APPn left, except the bare JFIF header a re-encode writes (format version, no photo data).
    assert not [m for m in segments if 0xE1 <= m <= 0xEF and m != 0xEE], segments
    assert 0xFE not in segments  # no comment
    assert out.endswith(b"\xff\xd9")
    assert not reopen(prepare_image(data)).getexif()


def test_upright_jpeg_keeps_its_pixels_exactly() -> None:
    original = photos.encode(photos.noise_photo(640, 480), "JPEG", quality=92, comment=b"x" * 100)
    prepared = prepare_image(original)
    assert np.array_equal(np.asarray(reopen(prepared)), np.asarray(Image.open(io.BytesIO(original))))


def test_trailing_data_after_jpeg_end_is_dropped() -> None:
    data = photos.encode(photos.shapes(), "JPEG") + b"hidden payload after EOI"
    assert b"hidden payload" not in prepare_image(data).data
    assert strip_jpeg_metadata(data).endswith(b"\xff\xd9")


def test_png_metadata_and_gps_in_heic_are_removed() -> None:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Someone Private")
    png = photos.encode(photos.shapes(), "PNG", pnginfo=info, exif=Image.Exif())
    out = prepare_image(png).data
    assert b"Someone Private" not in out
    exif = Image.Exif()
    exif.get_ifd(photos.GPS_IFD).update({1: "N", 2: (48.0, 51.0, 29.0)})
    exif[0x010F] = "TestCam Inc."
    heic = photos.encode(photos.shapes(), "HEIF", exif=exif.tobytes())
    assert b"TestCam" in heic
    prepared = prepare_image(heic)
    assert prepared.format == "HEIF"
    assert b"TestCam" not in prepared.data and b"Exif" not in prepared.data


def test_transparency_is_kept_as_png_without_metadata_chunks() -> None:
    img = Image.new("RGBA", (200, 100), (0, 128, 255, 0))
    img.paste((255, 0, 0, 255), (50, 25, 150, 75))
    prepared = prepare_image(photos.encode(img, "PNG"))
    assert prepared.content_type == "image/png"
    assert set(photos.png_chunks(prepared.data)) <= {b"IHDR", b"IDAT", b"IEND"}
    assert reopen(prepared).mode == "RGBA"
    assert prepared.model_image.getpixel((5, 5)) == (255, 255, 255)  # shown over white for the models


def test_opaque_alpha_becomes_jpeg() -> None:
    prepared = prepare_image(photos.encode(photos.shapes().convert("RGBA"), "PNG"))
    assert prepared.content_type == "image/jpeg"


def test_colour_profile_is_converted_then_dropped() -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = photos.encode(photos.shapes(), "JPEG", icc_profile=srgb)
    out = prepare_image(data).data
    assert b"ICC_PROFILE" in data and b"ICC_PROFILE" not in out


def test_model_copy_is_scaled_down() -> None:
    prepared = prepare_image(photos.encode(photos.noise_photo(4000, 3000), "JPEG", quality=85))
    assert (prepared.width, prepared.height) == (4000, 3000)
    assert max(prepared.model_image.size) <= 1600
    assert prepared.model_image.width / prepared.model_image.height == pytest.approx(4 / 3, rel=0.01)


def test_error_is_typed_and_readable() -> None:
    with pytest.raises(ImageError) as caught:
        prepare_image(b"nope")
    assert caught.value.code == "NOT_AN_IMAGE"
    assert "not an image" in str(caught.value)
