"""Alignment: the five landmarks land on the template whatever the pose in the plane."""

from __future__ import annotations

import math

import numpy as np
import pytest

from model.core.alignment import align_face, crop_box, similarity_matrix, template_points
from model.records import DetectedFace, Landmarks

SIZE = 112


def _face_from_points(points: np.ndarray, box=(0, 0, 10, 10)) -> DetectedFace:
    pts = [(float(x), float(y)) for x, y in points]
    return DetectedFace(box=box, confidence=0.99, landmarks=Landmarks(*pts))


def _pose(angle_deg: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    """Template points rotated, scaled and shifted into a larger image."""
    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]) * scale
    centre = template_points(SIZE).mean(axis=0)
    return (template_points(SIZE) - centre) @ rot.T + np.array(shift)


def _blob(shape: tuple[int, int], point: np.ndarray, sigma: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    g = np.exp(-((xx - point[0]) ** 2 + (yy - point[1]) ** 2) / (2 * sigma**2))
    return np.repeat((g * 255).round().astype(np.uint8)[..., None], 3, axis=2)


def _centroid(crop: np.ndarray) -> np.ndarray:
    weight = crop[..., 0].astype(np.float64)
    weight[weight < 20] = 0  # ignore the faint tail (and edge replication)
    yy, xx = np.mgrid[: crop.shape[0], : crop.shape[1]]
    return np.array([(xx * weight).sum(), (yy * weight).sum()]) / weight.sum()


@pytest.mark.parametrize("angle, scale, shift", [
    (0.0, 1.0, (56.0, 60.0)),
    (25.0, 2.3, (200.0, 150.0)),
    (-40.0, 0.8, (120.0, 300.0)),
    (90.0, 3.0, (250.0, 250.0)),
])
def test_landmarks_land_on_the_template(angle, scale, shift):
    shape = (400, 420)
    points = _pose(angle, scale, shift)
    face = _face_from_points(points)
    matrix = similarity_matrix(points.astype(np.float32), template_points(SIZE))
    assert matrix is not None
    mapped = points @ matrix[:, :2].T + matrix[:, 2]
    np.testing.assert_allclose(mapped, template_points(SIZE), atol=1e-2)
    # The pixels themselves: a blob drawn at each landmark ends up at the template point.
    for point, target in zip(points, template_points(SIZE), strict=True):
        crop = align_face(_blob(shape, point, sigma=2.0 * scale), face)
        assert crop.shape == (SIZE, SIZE, 3) and crop.dtype == np.uint8
        assert np.linalg.norm(_centroid(crop) - target) < 1.0


def test_other_crop_size_uses_scaled_template():
    points = _pose(10.0, 1.5, (150.0, 150.0))
    crop = align_face(_blob((300, 300), points[2], 3.0), _face_from_points(points), size=64)
    assert crop.shape == (64, 64, 3)
    assert np.linalg.norm(_centroid(crop) - template_points(64)[2]) < 1.0


def test_degenerate_landmarks_fall_back_to_box_crop(astronaut):
    box = (182, 64, 83, 107)
    face = _face_from_points(np.full((5, 2), 200.0), box=box)
    crop = align_face(astronaut, face)
    assert crop.shape == (SIZE, SIZE, 3) and crop.dtype == np.uint8
    np.testing.assert_array_equal(crop, crop_box(astronaut, box, SIZE))


def test_crop_box_centres_the_box():
    image = np.zeros((200, 300, 3), dtype=np.uint8)
    image[50:150, 100:200] = 255  # the box itself, square
    crop = crop_box(image, (100, 50, 100, 100), SIZE)
    assert crop.shape == (SIZE, SIZE, 3)
    assert crop[2:-2, 2:-2].min() > 200  # the box fills the crop


@pytest.mark.slow
def test_real_face_aligns(astronaut, detector):
    [face] = detector.detect(astronaut)
    crop = align_face(astronaut, face)
    assert crop.shape == (SIZE, SIZE, 3) and crop.dtype == np.uint8
    assert crop.std() > 10  # a face, not a flat fill
