"""Face detection: an adapter over the ``mtcnn`` package (its bundled weights).

Everything MTCNN-specific (its dict output, its key names, numpy int64s, its
``min_face_size`` quirk) is converted here and nowhere else; callers get
``DetectedFace`` records in the project's box convention (see ``records``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from model.records import DetectedFace, Landmarks
from model.runtime import import_tensorflow_quietly


class FaceDetector:
    """MTCNN, loaded once, thread-safe (one call at a time).

    min_confidence: detections below it are dropped (0.90 default). Raise it to
        reject more doubtful faces, lower it to find more faces in poor light.
    max_side: images are shrunk so their longer side is at most this many pixels
        before detection, and boxes are scaled back. Smaller is faster (MTCNN's
        cost grows with the area) but misses small faces: a face must be at least
        about 20 pixels in the shrunk image. 640 suits a webcam frame.

    We do not use mtcnn's ``min_face_size`` knob: in mtcnn 1.0.0 values above
    about 21 on a 480-pixel frame silently return no faces. Shrinking the image
    has the same effect on speed and works.
    """

    def __init__(self, min_confidence: float = 0.90, max_side: int = 1280) -> None:
        import_tensorflow_quietly()
        from mtcnn import MTCNN  # imported here: TensorFlow start-up is slow

        self.min_confidence = min_confidence
        self.max_side = max_side
        self._mtcnn = MTCNN(device="CPU:0")
        self._lock = threading.Lock()

    def detect(self, image: np.ndarray, *, max_side: int | None = None) -> list[DetectedFace]:
        """Faces in an RGB uint8 image (H x W x 3), largest first. Empty list if none."""
        return self.detect_batch([image], max_side=max_side)[0]

    def detect_batch(self, images: Sequence[np.ndarray], *,
                     max_side: int | None = None) -> list[list[DetectedFace]]:
        """Detect faces in several images in one MTCNN call (images of similar size batch best)."""
        if len(images) == 0:
            return []
        limit = max_side or self.max_side
        shrunk, scales = zip(*(_shrink(_check_rgb(img), limit) for img in images), strict=True)
        with self._lock:
            raw = self._mtcnn.detect_faces(list(shrunk), box_format="xywh", output_type="json")
        results: list[list[DetectedFace]] = []
        for faces, scale in zip(raw, scales, strict=True):
            found = [_to_face(face, scale) for face in faces]
            found = [f for f in found if f.confidence >= self.min_confidence and f.size > 0]
            found.sort(key=lambda f: f.box[2] * f.box[3], reverse=True)
            results.append(found)
        return results

    def warm_up(self) -> None:
        """Run once on a blank frame so the first real call is not slow (graph tracing)."""
        self.detect(np.zeros((240, 320, 3), dtype=np.uint8))


def load_detector(min_confidence: float = 0.90, max_side: int = 1280) -> FaceDetector:
    """Load MTCNN (a few seconds: imports TensorFlow). Call once and keep the result."""
    return FaceDetector(min_confidence=min_confidence, max_side=max_side)


def _check_rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise TypeError(f"expected an RGB uint8 image H x W x 3, got {image.dtype} {image.shape}")
    return image


def _shrink(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale >= 1.0:
        return image, 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def _to_face(raw: dict[str, Any], scale: float) -> DetectedFace:
    x, y, w, h = (float(v) / scale for v in raw["box"])
    points = raw["keypoints"]

    def point(key: str) -> tuple[float, float]:
        px, py = points[key]
        return (float(px) / scale, float(py) / scale)

    # mtcnn's "left_eye" is already the image-left eye (smaller x); keep that,
    # but sort defensively so a tilted head never swaps the template order.
    eyes = sorted([point("left_eye"), point("right_eye")])
    mouth = sorted([point("mouth_left"), point("mouth_right")])
    landmarks = Landmarks(left_eye=eyes[0], right_eye=eyes[1], nose=point("nose"),
                          mouth_left=mouth[0], mouth_right=mouth[1])
    box = (int(round(x)), int(round(y)), int(round(w)), int(round(h)))
    return DetectedFace(box=box, confidence=float(raw["confidence"]), landmarks=landmarks)
