"""Loading images from a path or bytes into RGB uint8 arrays (H x W x 3).

Pillow decodes (JPEG, PNG, WebP, BMP), applies the EXIF orientation that phones
write instead of rotating pixels, and converts grayscale, palette, RGBA and CMYK
to RGB. Anything else becomes an ``ImageError`` naming the source.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from model.errors import ImageError
from model.settings import get_settings

ImageSource = str | Path | bytes | bytearray | memoryview

#: Formats we accept. Others (GIF, TIFF, ICO, ...) are refused with a sentence.
ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "MPO"})


def load_image(source: ImageSource, *, label: str | None = None,
               max_pixels: int | None = None) -> np.ndarray:
    """Decode ``source`` (a path or the file's bytes) to an RGB uint8 array.

    ``label`` names the source in error messages (defaults to the path, or
    "the image"). ``max_pixels`` caps width x height to refuse decompression
    bombs; the default comes from the settings (40 megapixels).
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
    return _decode(data, name, limit)


def _decode(data: bytes, name: str, max_pixels: int) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            # Pillow warns before it raises on bombs; we check the size ourselves.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                if img.format not in ACCEPTED_FORMATS:
                    raise ImageError(
                        f"{name}: {img.format or 'this'} images are not supported; "
                        "use JPEG, PNG, WebP or BMP.")
                width, height = img.size
                if width * height > max_pixels:
                    raise ImageError(
                        f"{name}: the image is too large ({width}x{height} pixels; "
                        f"the limit is {max_pixels // 1_000_000} megapixels).")
                if width < 1 or height < 1:
                    raise ImageError(f"{name}: the image has no pixels.")
                img.load()  # decode now, so truncated files fail here
                upright: Image.Image = ImageOps.exif_transpose(img) or img
                rgb = _to_rgb(upright)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image, or a format we cannot read.") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageError(f"{name}: the image is damaged or truncated ({exc}).") from None
    array = np.asarray(rgb, dtype=np.uint8)
    return np.ascontiguousarray(array)


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Composite on white so transparent backgrounds do not turn black.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")  # L, I;16, P, CMYK, YCbCr ...


def encode_jpeg(image: np.ndarray, quality: int = 95) -> bytes:
    """Encode an RGB uint8 array as JPEG bytes (used for stored face crops)."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def encode_png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()
