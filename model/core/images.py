"""Loading images from a path or bytes into RGB uint8 arrays (H x W x 3).

Pillow decodes (JPEG, PNG, WebP, BMP, TIFF), applies the EXIF orientation that
phones write instead of rotating pixels, scales 16-bit and floating-point pictures
(scanners, some cameras and phones) down to 8 bits by their bit depth, and
converts grayscale, palette, RGBA and CMYK to RGB. TIFFs Pillow cannot represent
(floating-point or 32-bit colour) are decoded by OpenCV instead. Large photos are
decoded at a reduced size (JPEG straight from its compressed data), so a
100-megapixel photo costs a few hundred megabytes, not gigabytes. Anything else
becomes an ``ImageError`` naming the source.
"""

from __future__ import annotations

import io
import math
import struct
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, TiffImagePlugin, UnidentifiedImageError

from model.errors import ImageError
from model.settings import get_settings

ImageSource = str | Path | bytes | bytearray | memoryview

#: Formats we accept. Others (GIF, ICO, ...) are refused with a sentence.
ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "MPO", "TIFF"})

#: Longer side (pixels) above which ``load_image`` decodes a reduced copy by default.
#: Detection works on at most 1280 pixels and stored face crops are 112, so decoding
#: more only costs memory (a 100 MP photo is 300 MB as RGB, 19 MB at 2500 x 2500).
DECODE_MAX_SIDE = 4096

#: The EXIF orientation tag, and how to turn each value upright (as ImageOps.exif_transpose).
_ORIENTATION_TAG = 0x0112
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90,
}
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")


def load_image(source: ImageSource, *, label: str | None = None,
               max_pixels: int | None = None,
               max_side: int | None = DECODE_MAX_SIDE) -> np.ndarray:
    """Decode ``source`` (a path or the file's bytes) to an RGB uint8 array (H x W x 3).

    ``label`` names the source in error messages (defaults to the path, or
    "the image"). ``max_pixels`` caps width x height (pixels) to refuse
    decompression bombs; the default comes from the settings (120 megapixels).
    ``max_side`` (pixels): a picture whose longer side is above it is decoded
    shrunk by a whole factor so its longer side is at most ``max_side`` (between
    half of it and it); ``None`` decodes at full size. Face boxes found later are
    in the returned array's pixels.
    Raises ``ImageError`` for missing, empty, truncated, oversized or non-image input.
    """
    limit = max_pixels if max_pixels is not None else get_settings().max_image_pixels
    if isinstance(source, (str, Path)):
        path = Path(source)
        name = label or str(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ImageError(f"{name}: no such file.") from None
        except IsADirectoryError:
            raise ImageError(f"{name}: is a folder, not an image.") from None
        except OSError as exc:
            raise ImageError(f"{name}: cannot be read ({exc.strerror or exc}).") from None
    else:
        data = bytes(source)
        name = label or "the image"
    if not data:
        raise ImageError(f"{name}: the file is empty.")
    return _decode(data, name, limit, max_side)


def _decode(data: bytes, name: str, max_pixels: int, max_side: int | None) -> np.ndarray:
    orientation = None
    try:
        with warnings.catch_warnings():
            # Pillow warns about big pictures (and raises above ~179 MP) and corrupt
            # metadata; we check the size ourselves and refuse bad files with a sentence.
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as img:
                if img.format not in ACCEPTED_FORMATS:
                    raise ImageError(
                        f"{name}: {img.format or 'this'} images are not supported; "
                        "use JPEG, PNG, WebP, BMP or TIFF.")
                _check_size(img.size, name, max_pixels)
                orientation = img.getexif().get(_ORIENTATION_TAG)
                factor = _shrink_factor(img.size, max_side)
                if factor > 1:
                    # JPEG only: decode at 1/2, 1/4 or 1/8 scale, never below this size.
                    img.draft("RGB", (img.width // factor, img.height // factor))
                img.load()  # decode now, so truncated files fail here
                rgb = _to_rgb(_to_8_bits(img))
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError(_too_many_pixels(name, _header_size(data), max_pixels)) from None
    except UnidentifiedImageError:
        if not data.startswith(_TIFF_MAGIC):
            raise ImageError(f"{name}: not an image, or a format we cannot read.") from None
        rgb = _decode_with_opencv(data, name, max_pixels)
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name}: the image is damaged or truncated ({exc}).") from None
    rgb = _shrink(rgb, max_side)
    if orientation in _UPRIGHT:
        rgb = rgb.transpose(_UPRIGHT[orientation])
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def _check_size(size: tuple[int, int], name: str, max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise ImageError(_too_many_pixels(name, size, max_pixels))
    if width < 1 or height < 1:
        raise ImageError(f"{name}: the image has no pixels.")


def _too_many_pixels(name: str, size: tuple[int, int] | None, max_pixels: int) -> str:
    dimensions = f"{size[0]}x{size[1]}, " if size else ""
    return (f"{name}: the picture has too many pixels "
            f"({dimensions}over the limit of {max_pixels / 1e6:g} megapixels).")


def _header_size(data: bytes) -> tuple[int, int] | None:
    """Width and height read from the header by the plugin that accepts ``data``.

    ``Image.open`` refuses a bomb without saying its size; the plugin alone does not check.
    """
    Image.init()
    for fmt in sorted(ACCEPTED_FORMATS):
        factory, accept = Image.OPEN.get(fmt, (None, None))
        if factory is None or (accept is not None and accept(data[:16]) is not True):
            continue
        try:
            with factory(io.BytesIO(data), "") as img:
                return img.size
        except (OSError, SyntaxError, ValueError, IndexError, TypeError, struct.error):
            continue
    return None


def _shrink_factor(size: tuple[int, int], max_side: int | None) -> int:
    """Smallest whole factor that brings the longer side of ``size`` to ``max_side`` or less."""
    return 1 if max_side is None else max(1, math.ceil(max(size) / max_side))


def _shrink(img: Image.Image, max_side: int | None) -> Image.Image:
    factor = _shrink_factor(img.size, max_side)
    return img.reduce(factor) if factor > 1 else img  # box average: no aliasing


def _to_8_bits(img: Image.Image) -> Image.Image:
    """16-bit, 32-bit and float grey pictures as 8-bit "L" (colour ones Pillow already cuts to 8)."""
    if img.mode.startswith("I;16") or img.mode == "I":
        bits = 16  # PNG's only deep grey; Pillow < 11 opened it as "I"
        if isinstance(img, TiffImagePlugin.TiffImageFile):
            bits = int(np.max(img.tag_v2.get(258, 16)))  # BitsPerSample: 12, 16, 32 ...
        return Image.fromarray(_scale_to_8_bits(np.asarray(img), bits))
    if img.mode == "F":
        return Image.fromarray(_scale_to_8_bits(np.asarray(img), 0))
    return img


def _scale_to_8_bits(array: np.ndarray, bits: int) -> np.ndarray:
    """Integers of ``bits`` bits keep their top 8 (0..65535 -> 0..255), never stretched
    to the picture's own maximum. Floats are taken as 0..1, the usual convention, unless
    a value exceeds 1: then as 0..65535, what 16-bit data turned into floats gives."""
    if array.dtype.kind == "f":
        values = np.nan_to_num(array).astype(np.float32, copy=False)
        values *= 255.0 if values.max(initial=0.0) <= 1.0 else 255.0 / 65535.0
        values += 0.5
    else:
        values = array >> (bits - 8) if bits > 8 else array.copy()
    return np.clip(values, 0, 255, out=values).astype(np.uint8)


def _decode_with_opencv(data: bytes, name: str, max_pixels: int) -> Image.Image:
    """A TIFF Pillow cannot represent (float or 32-bit colour), decoded by OpenCV, as RGB."""
    try:  # read the size first: OpenCV would allocate whatever the header claims
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns about corrupt tags, then we refuse
            header = TiffImagePlugin.ImageFileDirectory_v2(data[:8])
            stream = io.BytesIO(data)
            stream.seek(header.next)
            header.load(stream)
        size: tuple[int, int] | None = (int(header[256]), int(header[257]))
    except (KeyError, OSError, SyntaxError, ValueError, struct.error):
        size = None
    array = None
    if size is not None:
        _check_size(size, name, max_pixels)
        try:
            array = cv2.imdecode(np.frombuffer(data, np.uint8),
                                 cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH)
        except cv2.error:
            array = None
    if array is None or array.size == 0 or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise ImageError(f"{name}: a TIFF we cannot read (damaged, truncated or an unusual kind).")
    pixels = _scale_to_8_bits(array, array.dtype.itemsize * 8)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    elif pixels.ndim == 3:  # OpenCV keeps colour as BGR(A)
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGBA if pixels.shape[2] == 4
                              else cv2.COLOR_BGR2RGB)
    return _to_rgb(Image.fromarray(pixels))


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Composite on white so transparent backgrounds do not turn black.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")  # L, P, CMYK, YCbCr ...


def encode_jpeg(image: np.ndarray, quality: int = 95) -> bytes:
    """Encode an RGB uint8 array as JPEG bytes (used for stored face crops)."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def encode_png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()
