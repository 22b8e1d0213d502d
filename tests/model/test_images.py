"""Image loading: formats, EXIF orientation, colour modes, and every kind of bad input."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from model.core.images import DECODE_MAX_SIDE, encode_jpeg, encode_png, load_image
from model.errors import ImageError

WIDTH, HEIGHT = 60, 40


def _picture() -> np.ndarray:
    """A 40 x 60 RGB image with a distinct colour in each quadrant (survives JPEG)."""
    img = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    img[: HEIGHT // 2, : WIDTH // 2] = (255, 0, 0)
    img[: HEIGHT // 2, WIDTH // 2:] = (0, 255, 0)
    img[HEIGHT // 2:, : WIDTH // 2] = (0, 0, 255)
    img[HEIGHT // 2:, WIDTH // 2:] = (255, 255, 0)
    return img


def _encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt, suffix, lossless", [
    ("JPEG", ".jpg", False), ("PNG", ".png", True), ("WEBP", ".webp", False), ("BMP", ".bmp", True),
    ("TIFF", ".tif", True),
])
def test_accepted_formats_from_path_and_bytes(tmp_path, fmt, suffix, lossless):
    picture = _picture()
    data = _encode(Image.fromarray(picture), fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    path = tmp_path / f"photo{suffix}"
    path.write_bytes(data)
    for source in (path, str(path), data, bytearray(data), memoryview(data)):
        out = load_image(source)
        assert out.dtype == np.uint8 and out.shape == (HEIGHT, WIDTH, 3)
        assert out.flags["C_CONTIGUOUS"]
        if lossless or fmt == "WEBP":
            np.testing.assert_array_equal(out, picture)
        else:
            assert np.abs(out.astype(int) - picture).mean() < 8


def test_encoders_round_trip():
    picture = _picture()
    np.testing.assert_array_equal(load_image(encode_png(picture)), picture)
    assert np.abs(load_image(encode_jpeg(picture)).astype(int) - picture).mean() < 8


@pytest.mark.parametrize("orientation, expected", [
    (1, lambda a: a),
    (3, lambda a: np.rot90(a, 2)),
    (6, lambda a: np.rot90(a, -1)),  # stored sideways: turn 90 degrees clockwise to view
    (8, lambda a: np.rot90(a, 1)),
])
def test_exif_orientation_is_applied(orientation, expected):
    picture = _picture()
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _encode(Image.fromarray(picture), "JPEG", exif=exif.tobytes(), quality=95)
    out = load_image(data)
    want = expected(picture)
    assert out.shape == want.shape
    assert np.abs(out.astype(int) - want).mean() < 8


def test_grayscale_becomes_rgb():
    grey = np.tile(np.arange(WIDTH, dtype=np.uint8)[None, :] * 4, (HEIGHT, 1))
    out = load_image(_encode(Image.fromarray(grey, mode="L"), "PNG"))
    assert out.shape == (HEIGHT, WIDTH, 3)
    for channel in range(3):
        np.testing.assert_array_equal(out[..., channel], grey)


def test_rgba_is_composited_on_white():
    rgba = np.zeros((HEIGHT, WIDTH, 4), dtype=np.uint8)
    rgba[..., 0] = 200  # red where opaque
    rgba[:, : WIDTH // 2, 3] = 255  # left half opaque, right half fully transparent
    out = load_image(_encode(Image.fromarray(rgba, mode="RGBA"), "PNG"))
    assert out.shape == (HEIGHT, WIDTH, 3)
    np.testing.assert_array_equal(out[0, 0], [200, 0, 0])
    np.testing.assert_array_equal(out[0, -1], [255, 255, 255])


def test_cmyk_becomes_rgb():
    cmyk = Image.fromarray(_picture()).convert("CMYK")
    out = load_image(_encode(cmyk, "JPEG", quality=95))
    assert out.shape == (HEIGHT, WIDTH, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - _picture()).mean() < 25


def test_palette_becomes_rgb():
    palette = Image.fromarray(_picture()).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    out = load_image(_encode(palette, "PNG"))
    assert out.shape == (HEIGHT, WIDTH, 3)
    assert np.abs(out.astype(int) - _picture()).mean() < 8


def _error_names(source, name, **kwargs) -> str:
    with pytest.raises(ImageError) as info:
        load_image(source, **kwargs)
    message = str(info.value)
    assert name in message, message
    assert "\n" not in message
    return message


def test_refuses_non_image(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a picture")
    _error_names(path, "notes.jpg")


def test_refuses_truncated_file(tmp_path):
    data = _encode(Image.fromarray(np.random.default_rng(0).integers(
        0, 256, (200, 200, 3), dtype=np.uint8)), "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    _error_names(path, "cut.jpg")
    png = _encode(Image.fromarray(_picture()), "PNG")
    _error_names(png[: len(png) - 30], "selfie", label="selfie")


def test_refuses_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    assert "empty" in _error_names(path, "empty.png")
    _error_names(b"", "upload", label="upload")


def test_refuses_directory_and_missing_file(tmp_path):
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    _error_names(folder, "folder.jpg")
    _error_names(tmp_path / "missing.jpg", "missing.jpg")


@pytest.mark.parametrize("fmt", ["GIF", "ICO"])
def test_refuses_other_formats(tmp_path, fmt):
    path = tmp_path / f"photo.{fmt.lower()}"
    path.write_bytes(_encode(Image.fromarray(_picture()), fmt))
    assert fmt in _error_names(path, path.name)


def test_refuses_decompression_bomb(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_encode(Image.new("L", (4000, 3000)), "PNG"))  # 12 MP, a few KB
    message = _error_names(path, "bomb.png", max_pixels=1_000_000)
    assert "too many pixels (4000x3000, over the limit of 1 megapixels)" in message
    assert load_image(path).shape == (3000, 4000, 3)  # under the default limit


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG of a few dozen bytes whose header claims ``width`` x ``height`` grey pixels."""
    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


@pytest.mark.parametrize("width, height", [
    (40_000, 40_000),  # 1.6 gigapixels: Pillow itself refuses to open it
    (13_000, 10_000),  # 130 MP: Pillow only warns, our limit refuses it
])
def test_refuses_pixel_bomb_with_its_size(width, height):
    message = _error_names(_png_claiming(width, height), "upload.png", label="upload.png")
    assert f"too many pixels ({width}x{height}, over the limit of 120 megapixels)" in message
    assert "damaged" not in message


def test_large_jpeg_is_decoded_at_reduced_size():
    photo = np.zeros((6000, 9000, 3), dtype=np.uint8)
    photo[:, :4500] = (40, 160, 220)  # BGR for OpenCV; left half blue-ish, right half black
    data = cv2.imencode(".jpg", photo)[1].tobytes()
    out = load_image(data)
    assert max(out.shape[:2]) <= DECODE_MAX_SIDE
    assert max(out.shape[:2]) > DECODE_MAX_SIDE // 2
    assert out.shape[1] * 2 == out.shape[0] * 3  # 3:2 like the photo
    assert np.abs(out[10, 10].astype(int) - (220, 160, 40)).max() < 6
    assert out[10, -10].max() < 6


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_max_side_shrinks_by_a_whole_factor_and_keeps_orientation(fmt):
    picture = np.repeat(np.repeat(_picture(), 10, axis=0), 10, axis=1)  # 400 x 600
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: turn 90 degrees clockwise to view
    data = _encode(Image.fromarray(picture), fmt, exif=exif.tobytes())
    out = load_image(data, max_side=250)  # PNG: 600 / 3 = 200; JPEG: 600 / 2 / 2 = 150
    height, width = out.shape[:2]
    assert 125 < height <= 250 and abs(width / height - 2 / 3) < 0.01
    upright = np.rot90(picture, -1)  # 600 x 400, sampled at the centres of the output pixels
    rows = ((np.arange(height) + 0.5) * 600 / height).astype(int)
    cols = ((np.arange(width) + 0.5) * 400 / width).astype(int)
    assert np.abs(out.astype(int) - upright[rows][:, cols]).mean() < 8
    assert load_image(data, max_side=None).shape == upright.shape


_LEVELS = np.array([0, 0x00FF, 0x0100, 0x8000, 0xC000, 0xFFFF], dtype=np.uint16)
_LEVELS_8 = np.array([0, 0, 1, 128, 192, 255], dtype=np.uint8)


def _deep_grey() -> np.ndarray:
    """A 16-bit grey picture: known levels on the first row, then a full-range gradient."""
    grey = np.tile(np.linspace(0, 65535, WIDTH).astype(np.uint16), (HEIGHT, 1))
    grey[0, : len(_LEVELS)] = _LEVELS
    return grey


def _check_deep_grey(out: np.ndarray, tolerance: int = 0) -> None:
    assert out.dtype == np.uint8 and out.shape == (HEIGHT, WIDTH, 3)
    assert np.abs(out[0, : len(_LEVELS), 0].astype(int) - _LEVELS_8).max() <= tolerance
    row = out[1, :, 0].astype(int)
    assert np.all(np.diff(row) >= 0) and row[0] == 0 and row[-1] == 255
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


@pytest.mark.parametrize("make", [
    lambda grey: _encode(Image.fromarray(grey), "PNG"),  # Pillow writes mode I;16
    lambda grey: cv2.imencode(".png", grey)[1].tobytes(),
    lambda grey: cv2.imencode(".tif", grey)[1].tobytes(),
    lambda grey: _encode(Image.fromarray(grey.astype(">u2")), "TIFF"),  # big-endian I;16B
], ids=["png-pillow", "png-opencv", "tiff", "tiff-big-endian"])
def test_16_bit_grey_is_scaled_by_its_bit_depth(make):
    _check_deep_grey(load_image(make(_deep_grey())))


def test_float_grey_tiff_is_taken_as_0_to_1():
    grey = _deep_grey().astype(np.float32) / 65535
    _check_deep_grey(load_image(_encode(Image.fromarray(grey, mode="F"), "TIFF")), tolerance=1)


def _deep_colour() -> np.ndarray:
    """A 16-bit RGB picture: red carries the known levels and a gradient, green is
    half-scale red, blue is 65535 minus red."""
    red = _deep_grey()
    return np.dstack([red, red // 2, 65535 - red])


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_colour_is_scaled_by_its_bit_depth(suffix):
    rgb = _deep_colour()
    data = cv2.imencode(suffix, np.ascontiguousarray(rgb[..., ::-1]))[1].tobytes()  # BGR
    np.testing.assert_array_equal(load_image(data), (rgb >> 8).astype(np.uint8))


def test_float_colour_tiff_is_decoded_by_opencv():
    rgb = _deep_colour().astype(np.float32) / 65535  # a TIFF Pillow cannot open
    data = cv2.imencode(".tif", np.ascontiguousarray(rgb[..., ::-1]))[1].tobytes()
    out = load_image(data)
    assert np.abs(out.astype(int) - np.round(rgb * 255)).max() <= 1


def test_error_is_a_value_error():
    with pytest.raises(ValueError):
        load_image(b"nope")


def test_refuses_truncated_float_tiff():
    data = cv2.imencode(".tif", np.zeros((HEIGHT, WIDTH, 3), dtype=np.float32))[1].tobytes()
    assert "TIFF" in _error_names(data[: len(data) // 2], "scan.tif", label="scan.tif")
