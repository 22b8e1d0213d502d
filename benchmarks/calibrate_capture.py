"""Calibrate model/school/capture.py: near-identical frames vs different photos of one person.

Near-identical: the same photo shifted 1-3 px, rescaled by 0.97-1.03, with Gaussian noise
(sigma 2-4) and JPEG re-encoding (quality 70-90): what a still face gives frame to frame.
Different views: two different LFW photos of the same person (peopleDevTest, people the
shipped network did not train on). Prints pose change and cosine spreads and how a rule
classifies both sets (the grid the thresholds of ``model/school/capture.py`` were read from).

Run: ``python benchmarks/calibrate_capture.py [PEOPLE]`` (default 40 LFW people; 100 takes
about 90 s on 2 cores). Needs LFW (``FACEATT_LFW_DIR``, default ``../shared/datasets/lfw``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from skimage import data

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model.core.alignment import align_face
from model.core.detection import FaceDetector, load_detector
from model.core.pose import HeadPose, head_pose
from model.core.recognizer import Recognizer, load_recognizer
from model.records import DetectedFace
from model.settings import get_settings

MAX_SIDE = 320  # the live page detects on frames shrunk to 320 px (web_app.live.MAX_PROCESS_SIDE)
DEFAULT_PEOPLE = 40
PHOTOS_PER_PERSON = 4  # people with at least this many photos; the first four of each
JITTERS = 3  # jittered copies of each photo
POSE_THRESHOLDS = (0.06, 0.08, 0.10, 0.12)
COSINE_THRESHOLDS = (0.85, 0.88, 0.90, 0.92)

View = tuple[DetectedFace, np.ndarray]  # the detected face and its aligned crop


@dataclass
class _Measurements:
    """Per-pair figures: near-identical pairs (a photo and its jittered copies) and
    different-photo pairs (two photos of one person)."""

    near_pose: list[float] = field(default_factory=list)
    near_cos: list[float] = field(default_factory=list)
    near_yaw: list[float] = field(default_factory=list)
    near_pitch: list[float] = field(default_factory=list)
    diff_pose: list[float] = field(default_factory=list)
    diff_cos: list[float] = field(default_factory=list)
    diff_yaw: list[float] = field(default_factory=list)
    diff_pitch: list[float] = field(default_factory=list)


def _jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``image`` (RGB uint8) shifted, rescaled, noised and JPEG re-encoded like a webcam frame."""
    h, w = image.shape[:2]
    dx, dy = rng.integers(1, 4, size=2) * rng.choice([-1, 1], size=2)
    s = rng.uniform(0.97, 1.03)
    m = np.array([[s, 0, (1 - s) * w / 2 + dx], [0, s, (1 - s) * h / 2 + dy]], dtype=np.float64)
    out = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    out = np.clip(out + rng.normal(0, rng.uniform(2, 4), out.shape), 0, 255).astype(np.uint8)
    quality = int(rng.integers(70, 91))
    ok, buf = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
    if decoded is None:
        raise RuntimeError("JPEG re-encoding failed")
    return decoded[..., ::-1].copy()


def _view(detector: FaceDetector, image: np.ndarray) -> View | None:
    """The one face in ``image`` and its aligned crop; None unless exactly one face is found."""
    faces = detector.detect(image, max_side=MAX_SIDE)
    if len(faces) != 1:  # a second face can swap places with the first under jitter
        return None
    face = faces[0]
    return face, align_face(image, face)


def _describe(name: str, values: Sequence[float] | np.ndarray,
              qs: Sequence[int] = (0, 1, 5, 50, 95, 99, 100)) -> None:
    array = np.asarray(values)
    percentiles = " ".join(f"p{q}={np.percentile(array, q):.3f}" for q in qs)
    print(f"{name:34s} n={len(array):4d} " + percentiles, flush=True)


def _poses_and_embeddings(recognizer: Recognizer, views: Sequence[View]) -> tuple[list[HeadPose], np.ndarray]:
    poses = [head_pose(face.landmarks) for face, _ in views]
    embeddings = recognizer.embed([crop for _, crop in views])
    return poses, embeddings


def _people(lfw: Path, limit: int) -> list[str]:
    """The first ``limit`` peopleDevTest people with at least ``PHOTOS_PER_PERSON`` photos."""
    lines = (lfw / "peopleDevTest.txt").read_text().split("\n")[1:]
    rows = [line.split("\t") for line in lines if line.strip()]
    return [name for name, count in rows if int(count) >= PHOTOS_PER_PERSON][:limit]


def _read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    if image is None:
        raise SystemExit(f"cannot read {path}")
    return image[..., ::-1].copy()


def _measure(detector: FaceDetector, recognizer: Recognizer, subjects: Sequence[Sequence[np.ndarray]],
             rng: np.random.Generator) -> _Measurements:
    """Pose changes and cosines of every near-identical pair and every different-photo pair."""
    m = _Measurements()
    for images in subjects:
        originals: list[tuple[HeadPose, np.ndarray]] = []
        for image in images:
            base = _view(detector, image)
            if base is None:
                continue
            jittered = (_view(detector, _jitter(image, rng)) for _ in range(JITTERS))
            jits = [v for v in jittered if v is not None]
            poses, emb = _poses_and_embeddings(recognizer, [base, *jits])
            for i in range(len(poses)):
                for j in range(i + 1, len(poses)):
                    m.near_pose.append(poses[i].change_from(poses[j]))
                    m.near_yaw.append(abs(poses[i].yaw - poses[j].yaw))
                    m.near_pitch.append(abs(poses[i].pitch - poses[j].pitch))
                    m.near_cos.append(float(emb[i] @ emb[j]))
            originals.append((poses[0], emb[0]))
        for i in range(len(originals)):
            for j in range(i + 1, len(originals)):
                (pose_i, emb_i), (pose_j, emb_j) = originals[i], originals[j]
                m.diff_pose.append(pose_i.change_from(pose_j))
                m.diff_yaw.append(abs(pose_i.yaw - pose_j.yaw))
                m.diff_pitch.append(abs(pose_i.pitch - pose_j.pitch))
                m.diff_cos.append(float(emb_i @ emb_j))
    return m


def _print_grid(m: _Measurements) -> None:
    """How the rule "same pose and same look -> skip" classifies both sets, per threshold pair."""
    near_pose, near_cos = np.asarray(m.near_pose), np.asarray(m.near_cos)
    diff_pose, diff_cos = np.asarray(m.diff_pose), np.asarray(m.diff_cos)
    for pt in POSE_THRESHOLDS:
        for ct in COSINE_THRESHOLDS:
            near_kept = np.mean((near_pose >= pt) | (near_cos <= ct))
            diff_skipped = np.mean((diff_pose < pt) & (diff_cos > ct))
            print(f"pose {pt:.2f} cos {ct:.2f}: near-identical kept {100 * near_kept:5.1f}%  "
                  f"different skipped {100 * diff_skipped:5.1f}%")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("people", nargs="?", type=int, default=DEFAULT_PEOPLE,
                        help=f"how many LFW peopleDevTest people (default {DEFAULT_PEOPLE})")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    settings = get_settings()
    detector = load_detector(min_confidence=settings.min_detection_confidence, max_side=1280)
    recognizer = load_recognizer(None, settings)
    print("model:", recognizer.label, flush=True)

    lfw = settings.lfw_dir
    if not (lfw / "peopleDevTest.txt").exists():
        raise SystemExit(f"LFW is not at {lfw} (set FACEATT_LFW_DIR)")
    people = _people(lfw, args.people)
    print("people:", len(people), flush=True)

    started = time.time()
    subjects: list[list[np.ndarray]] = [[np.ascontiguousarray(data.astronaut())]]
    for name in people:
        subjects.append([_read_rgb(lfw / name / f"{name}_{i:04d}.jpg")
                         for i in range(1, PHOTOS_PER_PERSON + 1)])
    m = _measure(detector, recognizer, subjects, rng)
    print(f"took {time.time() - started:.0f} s", flush=True)

    _describe("near-identical: pose change", m.near_pose)
    _describe("near-identical: cosine", m.near_cos)
    _describe("near-identical: yaw change", m.near_yaw)
    _describe("near-identical: pitch change", m.near_pitch)
    _describe("different photos: yaw change", m.diff_yaw)
    _describe("different photos: pitch change", m.diff_pitch)
    _describe("different photos: pose change", m.diff_pose)
    _describe("different photos: cosine", m.diff_cos)
    _print_grid(m)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
