"""The MTCNN adapter on real frames (slow: loads TensorFlow and MTCNN once per session)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from model.records import DetectedFace

pytestmark = pytest.mark.slow


def _frame(astronaut: np.ndarray, width: int = 640, height: int = 480) -> np.ndarray:
    """The astronaut resized to the frame height and padded left/right: a webcam-like frame."""
    side = min(width, height)
    frame = np.zeros((height, width, 3), dtype=np.uint8)
    left = (width - side) // 2
    frame[:side, left:left + side] = cv2.resize(astronaut, (side, side), interpolation=cv2.INTER_AREA)
    return frame


def _check_sane(face: DetectedFace, image: np.ndarray) -> None:
    x, y, w, h = face.box
    assert all(isinstance(v, int) for v in face.box)
    assert x >= 0 and y >= 0 and x + w <= image.shape[1] + 2 and y + h <= image.shape[0] + 2
    assert min(w, h) >= 40 and 0.6 < w / h < 1.4
    assert 0.9 <= face.confidence <= 1.0
    lm = face.landmarks
    for px, py in lm.as_list():
        assert isinstance(px, float) and x <= px <= x + w and y <= py <= y + h
    assert lm.left_eye[0] < lm.right_eye[0] and lm.mouth_left[0] < lm.mouth_right[0]
    assert max(lm.left_eye[1], lm.right_eye[1]) < lm.nose[1] < min(lm.mouth_left[1], lm.mouth_right[1])


def test_astronaut_has_one_face(detector, astronaut):
    faces = detector.detect(astronaut)
    assert len(faces) == 1
    _check_sane(faces[0], astronaut)
    x, y, w, h = faces[0].box
    # Eileen Collins' face sits near (180..265, 60..175) in the 512 x 512 photo.
    assert 150 < x < 220 and 30 < y < 100 and 60 < w < 120


def test_blank_image_has_no_face(detector):
    assert detector.detect(np.zeros((480, 640, 3), dtype=np.uint8)) == []
    assert detector.detect(np.full((100, 100, 3), 128, dtype=np.uint8)) == []
    assert detector.detect_batch([]) == []


def test_two_astronauts_two_faces(detector, two_astronauts):
    faces = detector.detect(two_astronauts)
    assert len(faces) == 2
    for face in faces:
        _check_sane(face, two_astronauts)
    lefts = sorted(face.box[0] for face in faces)
    assert lefts[0] < 512 <= lefts[1]
    areas = [f.box[2] * f.box[3] for f in faces]
    assert areas == sorted(areas, reverse=True)  # largest first


def test_webcam_frame_at_default_and_live_size(detector, astronaut):
    frame = _frame(astronaut)
    assert frame.shape == (480, 640, 3)
    full = detector.detect(frame)
    live = detector.detect(frame, max_side=320)
    assert len(full) == 1 and len(live) == 1
    _check_sane(full[0], frame)
    _check_sane(live[0], frame)
    # Boxes found on the shrunk frame are scaled back to the frame's own pixels.
    assert np.abs(np.subtract(full[0].box, live[0].box)).max() <= 8


def test_batch_matches_single_calls(detector, astronaut, two_astronauts):
    frame = _frame(astronaut)
    batch = detector.detect_batch([frame, np.zeros_like(frame), frame])
    assert [len(faces) for faces in batch] == [1, 0, 1]
    single = detector.detect(frame)[0]
    assert np.abs(np.subtract(batch[0][0].box, single.box)).max() <= 2


def test_wrong_input_is_refused(detector):
    with pytest.raises(TypeError):
        detector.detect(np.zeros((10, 10), dtype=np.uint8))
    with pytest.raises(TypeError):
        detector.detect(np.zeros((10, 10, 3), dtype=np.float32))


def test_follow_finds_a_face_that_moved_and_loses_one_that_left(detector, astronaut):
    frame = _frame(astronaut)
    [face] = detector.detect(frame, max_side=320)
    [same] = detector.follow(frame, [face.box])
    assert same is not None
    _check_sane(same, frame)
    assert np.abs(np.subtract(same.box, face.box)).max() <= 8  # same place, same size
    # The head moved 30 px (about a third of its width) to the right between two frames.
    moved = np.roll(frame, 30, axis=1)
    [followed] = detector.follow(moved, [face.box])
    assert followed is not None
    assert abs(followed.box[0] - (face.box[0] + 30)) <= 8
    assert abs(followed.landmarks.nose[0] - (face.landmarks.nose[0] + 30)) <= 6
    # Nobody there any more: no box, rather than one left on the background.
    empty = np.full_like(frame, 120)
    assert detector.follow(empty, [face.box]) == [None]
    assert detector.follow(frame, []) == []
