"""Image loading: formats, EXIF orientation, colour modes, and every kind of bad input."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from model.errors import ImageError
from model.images import encode_jpeg, encode_png, load_image

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


@pytest.mark.parametrize("fmt", ["GIF", "TIFF"])
def test_refuses_other_formats(tmp_path, fmt):
    path = tmp_path / f"photo.{fmt.lower()}"
    path.write_bytes(_encode(Image.fromarray(_picture()), fmt))
    assert fmt in _error_names(path, path.name)


def test_refuses_decompression_bomb(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_encode(Image.new("L", (4000, 3000)), "PNG"))  # 12 MP, a few KB
    assert "too large" in _error_names(path, "bomb.png", max_pixels=1_000_000)
    assert load_image(path).shape == (3000, 4000, 3)  # under the default limit


def test_error_is_a_value_error():
    with pytest.raises(ValueError):
        load_image(b"nope")
