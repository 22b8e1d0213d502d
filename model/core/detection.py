"""Face detection: an adapter over the ``mtcnn`` package (its bundled weights).

Everything MTCNN-specific (its dict output, its key names, numpy int64s, its
``min_face_size`` quirk) is converted here and nowhere else; callers get
``DetectedFace`` records in the project's box convention (see ``records``).

Two ways in: ``detect`` runs the whole cascade (P-Net over an image pyramid, then
R-Net, then O-Net) and finds every face; ``follow`` runs O-Net alone on a few boxes
around faces found a moment ago (live video), which costs a few milliseconds instead
of a full detection. The three networks run as compiled ``tf.function``s: mtcnn calls
them eagerly, which on 2 cores made a 320-pixel frame cost 160 ms instead of 55 ms.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from model.core.runtime import import_tensorflow_quietly
from model.records import DetectedFace, Landmarks


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
        _compile_stages(self._mtcnn)
        self._onet = self._mtcnn.get_stage(stage_name="Stage ONET")._model
        self._lock = threading.Lock()
        self._follow_lock = threading.Lock()

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

    def follow(self, image: np.ndarray,
               boxes: Sequence[tuple[int, int, int, int]]) -> list[DetectedFace | None]:
        """Where is each of these faces now? O-Net alone, around each ``(x, y, w, h)`` box.

        For live video: ``boxes`` are faces found in a recent frame. Each is looked for
        at its old place and shifted by ``FOLLOW_SHIFT`` of its size in four directions
        (one O-Net batch for all), the best candidate is refined by a second O-Net pass
        (as the full cascade's last stage does), and the face is returned with fresh
        landmarks, or None where no candidate scores ``min_confidence``: the face left,
        turned away or moved further than the search reaches (a full ``detect`` finds it
        again). Far cheaper than ``detect``: a few ms for several faces.
        """
        if len(boxes) == 0:
            return []
        image = _check_rgb(image)
        squares = [_square(box) for box in boxes]
        shifts = [(0.0, 0.0)] + [(dx * FOLLOW_SHIFT, dy * FOLLOW_SHIFT)
                                 for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))]
        candidates = np.array([(x + dx * side, y + dy * side, side)
                               for x, y, side in squares for dx, dy in shifts])
        boxes1, _, scores1 = self._run_onet(image, candidates)
        best = scores1.reshape(len(squares), len(shifts)).argmax(axis=1)
        picked = [boxes1[i * len(shifts) + b] for i, b in enumerate(best)]
        # Second pass from the regressed box of the best candidate, squared like R-Net's
        # output: the box and landmarks then follow the same recipe as ``detect``.
        second = np.array([_square(_xyxy_to_xywh(box)) for box in picked])
        boxes2, points2, scores2 = self._run_onet(image, second)
        found: list[DetectedFace | None] = []
        for box, points, score in zip(boxes2, points2, scores2, strict=True):
            if score < self.min_confidence:
                found.append(None)
                continue
            face = _to_face({"box": _xyxy_to_xywh(box), "confidence": float(score),
                             "keypoints": dict(zip(_KEYPOINTS, points, strict=True))}, 1.0)
            found.append(face if face.size > 0 else None)
        return found

    def _run_onet(self, image: np.ndarray,
                  squares: np.ndarray) -> tuple[np.ndarray, list[list[tuple[float, float]]],
                                                np.ndarray]:
        """O-Net on square ``(x, y, side)`` regions: regressed xyxy boxes, the five
        landmarks of each and the face scores (the cascade's own formulas)."""
        patches = np.stack([_patch(image, x, y, side) for x, y, side in squares])
        with self._follow_lock:
            offsets, landmarks, scores = (np.asarray(t) for t in self._onet(patches))
        x1, y1, side = squares[:, 0], squares[:, 1], squares[:, 2]
        size = side + 1  # mtcnn measures a box x1..x2 as x2 - x1 + 1 pixels
        boxes = np.stack([x1, y1, x1 + side, y1 + side], axis=1) + offsets * size[:, None]
        xs = landmarks[:, 0:5] * size[:, None] + x1[:, None] - 1
        ys = landmarks[:, 5:10] * size[:, None] + y1[:, None] - 1
        points = [list(zip(px.tolist(), py.tolist(), strict=True)) for px, py in zip(xs, ys, strict=True)]
        return boxes, points, scores[:, 1]

    def warm_up(self) -> None:
        """Run once on a blank frame so the first real call is not slow (graph tracing)."""
        blank = np.zeros((240, 320, 3), dtype=np.uint8)
        self.detect(blank)
        self.follow(blank, [(100, 60, 80, 100)])


def load_detector(min_confidence: float = 0.90, max_side: int = 1280) -> FaceDetector:
    """Load MTCNN (a few seconds: imports TensorFlow). Call once and keep the result."""
    return FaceDetector(min_confidence=min_confidence, max_side=max_side)


#: ``follow`` looks for a tracked face this far (a fraction of its size) from where it
#: was, in four directions. 0.25 follows a head moving about a quarter of its width
#: between two processed frames (fast for a person at a desk at 8 frames per second);
#: more reaches further but the shifted boxes then hold less of the face.
FOLLOW_SHIFT = 0.25
#: O-Net's input size, and the order of its five landmarks (mtcnn's ``to_json``).
_ONET_SIZE = 48
_KEYPOINTS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


def _compile_stages(mtcnn: Any) -> None:
    """Wrap each stage's network in ``tf.function`` (mtcnn calls them eagerly).

    ``reduce_retracing`` lets one trace serve the pyramid's many image sizes.
    """
    import tensorflow as tf

    for stage in mtcnn.stages:
        stage._model = tf.function(stage._model, reduce_retracing=True)


def _square(box: Sequence[float]) -> tuple[float, float, float]:
    """The square ``(x, y, side)`` around an ``(x, y, w, h)`` box, same centre (mtcnn's
    ``resize_to_square``)."""
    x, y, w, h = (float(v) for v in box)
    side = max(w, h)
    return (x + (w - side) / 2, y + (h - side) / 2, side)


def _xyxy_to_xywh(box: Sequence[float]) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return (x1, y1, x2 - x1, y2 - y1)


def _patch(image: np.ndarray, x: float, y: float, side: float) -> np.ndarray:
    """The square region resampled to O-Net's 48x48 input, normalised as mtcnn does
    (outside the image reads as 0 after normalising, as ``crop_and_resize`` pads)."""
    scale = (_ONET_SIZE - 1) / max(side, 1.0)
    warp = np.array([[scale, 0, -x * scale], [0, scale, -y * scale]], dtype=np.float32)
    patch = cv2.warpAffine(image, warp, (_ONET_SIZE, _ONET_SIZE), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=(127.5, 127.5, 127.5))
    return (patch.astype(np.float32) - 127.5) / 128.0


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
