"""What a poor classroom camera does to a face, for training and for the shifted benchmark.

Two uses, deliberately different:

- ``classroom_augment(crop, rng)``: random degradations for training (each with its own
  probability and range): small rotations and shifts, mirror, dim/uneven/tinted light,
  greyscale, low resolution (the face down to ~20-60 px and back up), blur, sensor
  noise, JPEG artefacts and partial occlusion. The student sees the degraded face;
  its target is the teacher's embedding of the clean one.
- ``shifted_camera(crop, seed)``: one fixed, deterministic "poor classroom camera"
  (greyscale, face down to ~40 px, blur, JPEG quality 30, darker), the benchmark
  condition. Thresholds are never tuned on it.

Both take and return aligned uint8 RGB crops (any square size; 112 in the gallery).
"""

from __future__ import annotations

import cv2
import numpy as np

#: The benchmark camera: side (px) the 112-px aligned crop is shrunk to (the face box
#: is ~85% of the crop, so the face is ~40 px), Gaussian blur sigma at that size, JPEG
#: quality, and the gamma that darkens the picture (>1 is darker).
SHIFT_CROP_SIDE = 46
#: Eye distance (px) in the 112-px aligned crop (ArcFace template) and, measured with
#: dlib's 5-point model, in a 250-px deep-funneled LFW photo: a full photo is shrunk by
#: ``SHIFT_CROP_SIDE / 112 * 35.2 / 42.3`` so its face ends up the same size.
CROP_EYE_DISTANCE = 35.2
LFW_EYE_DISTANCE = 42.3
LFW_PHOTO_SCALE = SHIFT_CROP_SIDE / 112 * CROP_EYE_DISTANCE / LFW_EYE_DISTANCE
SHIFT_BLUR_SIGMA = 0.6
SHIFT_JPEG_QUALITY = 30
SHIFT_GAMMA = 1.6
SHIFT_GAIN = 0.8
FACE_CROP = 112


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if ok else None
    return np.asarray(decoded) if decoded is not None else image


def _grey(image: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)


def shifted_camera(crop: np.ndarray, seed: int = 0, scale: float | None = None) -> np.ndarray:
    """The benchmark's poor classroom camera applied to one image (deterministic).

    An aligned 112-px crop by default; for a whole photo pass the ``scale`` that brings
    its face to the same size (``LFW_PHOTO_SCALE`` for LFW). ``seed`` only varies the
    sensor noise, so a photo degrades the same way every run. Same size out as in.
    """
    h, w = crop.shape[:2]
    scale = scale if scale is not None else SHIFT_CROP_SIDE / FACE_CROP
    rng = np.random.default_rng(seed)
    x = _grey(crop).astype(np.float32) / 255.0
    x = SHIFT_GAIN * np.power(x, SHIFT_GAMMA) * 255.0
    small = cv2.resize(x, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), SHIFT_BLUR_SIGMA)
    small += rng.normal(0.0, 3.0, small.shape[:2])[..., None]
    small_u8 = _jpeg(np.clip(small, 0, 255).astype(np.uint8), SHIFT_JPEG_QUALITY)
    if small_u8.ndim == 2:
        small_u8 = cv2.cvtColor(small_u8, cv2.COLOR_GRAY2RGB)
    return cv2.resize(small_u8, (w, h), interpolation=cv2.INTER_LINEAR)


def classroom_augment(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random classroom-camera version of an aligned uint8 RGB crop (same size)."""
    size = crop.shape[0]
    image = crop
    if rng.random() < 0.5:
        image = image[:, ::-1]
    # Geometry: alignment is never perfect (+-10 degrees, +-10% scale, a few pixels).
    angle = rng.uniform(-10.0, 10.0)
    scale = rng.uniform(0.9, 1.1)
    matrix = cv2.getRotationMatrix2D((size / 2, size / 2), angle, scale)
    matrix[:, 2] += rng.uniform(-0.05, 0.05, 2) * size
    x: np.ndarray = cv2.warpAffine(
        np.ascontiguousarray(image), matrix, (size, size), borderMode=cv2.BORDER_REFLECT
    ).astype(np.float32)
    # Light: exposure (gamma), contrast and brightness, tint, a gradient across the face.
    if rng.random() < 0.6:
        x = 255.0 * np.power(x / 255.0, np.exp(rng.uniform(np.log(0.5), np.log(2.2))))
    if rng.random() < 0.5:
        mean = float(x.mean())
        x = (x - mean) * rng.uniform(0.5, 1.25) + mean + rng.uniform(-40.0, 30.0)
    if rng.random() < 0.3:
        x = x * rng.uniform(0.85, 1.15, 3)
    if rng.random() < 0.25:
        theta = rng.uniform(0, 2 * np.pi)
        ramp = (
            np.cos(theta) * np.linspace(-1, 1, size)[None, :]
            + np.sin(theta) * np.linspace(-1, 1, size)[:, None]
        )
        x = x * (1.0 + rng.uniform(0.2, 0.5) * ramp)[..., None]
    if rng.random() < 0.3:
        x = np.repeat(
            cv2.cvtColor(np.clip(x, 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2
        ).astype(np.float32)
    # Resolution: the face only a few dozen pixels wide, then scaled back up.
    if rng.random() < 0.5:
        side = int(rng.integers(20, 64))
        small = cv2.resize(x, (side, side), interpolation=cv2.INTER_AREA)
        interp = cv2.INTER_LINEAR if rng.random() < 0.5 else cv2.INTER_CUBIC
        x = cv2.resize(small, (size, size), interpolation=interp)
    if rng.random() < 0.3:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.5, 1.8))
    if rng.random() < 0.35:
        x = x + rng.normal(0.0, rng.uniform(2.0, 12.0), x.shape).astype(np.float32)
    out = np.clip(x, 0, 255).astype(np.uint8)
    if rng.random() < 0.4:
        out = _jpeg(out, int(rng.integers(15, 75)))
    # Partial occlusion: a hand, a pen, a mask edge.
    if rng.random() < 0.15:
        h = int(size * rng.uniform(0.2, 0.45))
        w = int(size * rng.uniform(0.2, 0.45))
        top = int(rng.integers(0, size - h))
        left = int(rng.integers(0, size - w))
        out = out.copy()
        out[top : top + h, left : left + w] = rng.integers(0, 256, 3, dtype=np.uint8)
    return out


def live_jitter(crop: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """One frame of a followed face as the live page embeds it (same size out as in).

    Between two frames of a webcam the alignment moves a little (the follow path's O-Net
    landmarks wobble by a few percent of the face), the head turns slightly, exposure
    and focus drift, and the video codec blurs. ``strength`` in [0, 1] scales every one
    of these together: 0 returns the crop unchanged, 1 is a restless subject in dim light.
    """
    size = crop.shape[0]
    s = float(np.clip(strength, 0.0, 1.0))
    if s == 0.0:
        return crop
    matrix = cv2.getRotationMatrix2D((size / 2, size / 2), rng.uniform(-6.0, 6.0) * s,
                                     1.0 + rng.uniform(-0.06, 0.06) * s)
    matrix[:, 2] += rng.uniform(-0.04, 0.04, 2) * size * s
    x: np.ndarray = cv2.warpAffine(np.ascontiguousarray(crop), matrix, (size, size),
                                   borderMode=cv2.BORDER_REFLECT).astype(np.float32)
    x = x * (1.0 + rng.uniform(-0.25, 0.25) * s) + rng.uniform(-25.0, 25.0) * s
    if rng.random() < s:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.3, 0.3 + 1.2 * s))
    x = x + rng.normal(0.0, 5.0 * s, x.shape)
    return _jpeg(np.clip(x, 0, 255).astype(np.uint8), int(95 - 55 * s))
