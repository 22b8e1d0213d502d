"""Head pose and head shape from the detector's five landmarks.

``head_pose`` reads a rough yaw and pitch (no angles: fractions of the face), enough to tell
"facing the camera" from "turned to the left" or "looking up". ``off_plane`` tells a head
from a picture of one: between two views of a *flat* face (a print, a phone), the eyes and
mouth corners move by one homography and the nose moves with them; on a real head the nose
stands in front of that plane and leaves it as the head turns.

Pure geometry on ``Landmarks`` (image pixels, "left" = the image's left, see ``records``).
The sign of ``yaw`` follows the image's x axis: on an unmirrored camera picture a positive
yaw is the nose moved towards the image's right, which is the person's own left (checked
on the CMU and aws head-pose photos in ``../shared/datasets/pose``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from model.records import Landmarks


@dataclass(frozen=True)
class HeadPose:
    """A rough head pose from the five landmarks, free of roll (in-plane tilt).

    ``yaw``: horizontal offset of the nose from the eyes' midpoint, in eye distances, along
    the eye line (0 facing the camera; positive towards the image's right, the person's own
    left). About 0.25 is a turn of 20-25 degrees; the CMU "left" photos (45-90 degrees) read
    0.28-0.68 (5th-95th percentile).
    ``pitch``: how far down the nose sits between the eye line (0) and the mouth line (1);
    about 0.55 facing the camera (MTCNN's points), smaller looking up (CMU "up": 0.06-0.34),
    larger looking down.
    """

    yaw: float
    pitch: float

    def change_from(self, other: HeadPose) -> float:
        """The larger of the yaw and pitch differences (both are fractions of the face)."""
        return max(abs(self.yaw - other.yaw), abs(self.pitch - other.pitch))


def head_pose(landmarks: Landmarks) -> HeadPose:
    """The ``HeadPose`` of a detected face from its landmarks (image pixels)."""
    left_eye, right_eye, nose, mouth_left, mouth_right = (
        np.asarray(p, dtype=np.float64) for p in landmarks.as_list())
    eyes = (left_eye + right_eye) / 2
    across = right_eye - left_eye
    eye_distance = float(np.hypot(*across))
    if eye_distance < 1e-6:
        return HeadPose(0.0, 0.5)
    across /= eye_distance
    down = np.array([-across[1], across[0]])  # image y grows downwards
    mouth_depth = float(((mouth_left + mouth_right) / 2 - eyes) @ down)
    nose_offset = nose - eyes
    pitch = float(nose_offset @ down) / mouth_depth if mouth_depth > 1e-6 else 0.5
    return HeadPose(yaw=float(nose_offset @ across) / eye_distance, pitch=pitch)


def off_plane(before: Landmarks, after: Landmarks) -> float:
    """How far the nose left the plane of the eyes and mouth between two views, in eye
    distances (of ``after``).

    The homography that takes ``before``'s eyes and mouth corners onto ``after``'s is the
    motion of a flat face; it predicts where ``before``'s nose would be if it lay in that
    plane. A photo (printed, on a phone, tilted, waved) keeps its nose there up to the
    landmarks' jitter (a few hundredths); a real head turned by 20 degrees or more puts it
    a fifth to a half of an eye distance away (the CMU head-pose photos: median 0.36-0.61).
    Returns 0.0 when the points are degenerate (no homography).
    """
    src = np.asarray(before.as_list(), dtype=np.float64)
    dst = np.asarray(after.as_list(), dtype=np.float64)
    corners = [0, 1, 3, 4]  # eyes and mouth corners; the nose (2) is the probe
    eye_distance = float(np.linalg.norm(dst[1] - dst[0]))
    if eye_distance < 1e-6:
        return 0.0
    try:
        warp = cv2.getPerspectiveTransform(src[corners].astype(np.float32),
                                           dst[corners].astype(np.float32))
    except cv2.error:
        return 0.0
    x, y, w = warp @ np.array([src[2, 0], src[2, 1], 1.0])
    if not np.isfinite(w) or abs(w) < 1e-9:
        return 0.0
    return float(np.hypot(dst[2, 0] - x / w, dst[2, 1] - y / w)) / eye_distance
