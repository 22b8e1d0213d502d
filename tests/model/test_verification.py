"""1:1 Verify without TensorFlow: the graded verdict, the choice of a photo's main face, and
``verify_faces`` on a photo with two faces (a stub detector and a numpy "network")."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from synthetic_faces import synthetic_face

from model.api import FaceAttendance, main_face
from model.core.matching import MatchRule
from model.core.recognizer import Recognizer
from model.errors import NoFaceError
from model.records import DetectedFace, Verdict, Verification, grade_pair
from model.school.gallery import Gallery
from model.settings import get_settings

SAME, MAYBE, DIFFERENT = Verdict.SAME, Verdict.PROBABLY_SAME, Verdict.DIFFERENT


# ----- the graded verdict ------------------------------------------------------------

@pytest.mark.parametrize(("normalised", "expected"), [
    (9.0, SAME), (2.5, SAME), (2.4999, MAYBE), (1.0, MAYBE), (0.9999, DIFFERENT),
    (-3.0, DIFFERENT), (float("nan"), DIFFERENT), (float("-inf"), DIFFERENT),
])
def test_grade_pair_boundaries(normalised, expected):
    assert grade_pair(normalised, threshold=2.5, maybe_threshold=1.0) is expected


@pytest.mark.parametrize("maybe", [None, 2.5, 3.0])
def test_grade_pair_without_a_band_has_two_answers(maybe):
    assert grade_pair(2.5, 2.5, maybe) is SAME
    assert grade_pair(2.4999, 2.5, maybe) is DIFFERENT
    assert grade_pair(-10.0, 2.5, maybe) is DIFFERENT


@pytest.mark.parametrize(("normalised", "expected"), [(3.0, SAME), (1.5, MAYBE), (0.0, DIFFERENT)])
def test_same_is_the_strict_answer(normalised, expected):
    result = Verification.graded(0.58, normalised, 2.5, 1.0)
    assert result.verdict is expected
    assert result.same == (expected is SAME)  # a "probably" never counts as the same person
    assert result.explanation.lower().startswith(expected.value.split(" - ")[0])
    assert "%" not in result.explanation  # never the misleading raw similarity


def test_verdict_follows_same_when_not_given_and_may_not_contradict_it():
    assert Verification(same=True, score=0.9, threshold=2.5).verdict is SAME
    assert Verification(same=False, score=0.9, threshold=2.5).verdict is DIFFERENT
    with pytest.raises(ValueError):
        Verification(same=True, score=0.6, threshold=2.5, verdict=MAYBE)


def test_claimed_identity_explanation_names_the_person():
    yes = Verification(same=True, score=0.7, threshold=3.0, normalised=4.0, person="Ada Lovelace")
    no = Verification(same=False, score=0.3, threshold=3.0, normalised=1.0, person="Ada Lovelace")
    assert yes.explanation.startswith("Same person") and "Ada Lovelace" in yes.explanation
    assert no.explanation.startswith("Not Ada Lovelace")


# ----- the main face of a photo ------------------------------------------------------

SHAPE = (400, 600, 3)  # centre (x 300, y 200)


def _face(x: int, y: int, size: int) -> DetectedFace:
    return synthetic_face(x, y, size)


def test_main_face_is_the_largest_even_off_centre():
    big_corner, small_centre = _face(0, 0, 150), _face(275, 175, 50)
    assert main_face([small_centre, big_corner], SHAPE) is big_corner


def test_main_face_of_equal_sizes_is_the_most_central():
    left, centre, right = _face(20, 150, 100), _face(260, 160, 100), _face(440, 150, 100)
    assert main_face([left, right, centre], SHAPE) is centre
    assert main_face([left, right], SHAPE) is right  # centre x 490 is nearer 300 than 70


def test_main_face_counts_nearly_equal_sizes_as_equal():
    edge, centre = _face(0, 150, 100), _face(255, 155, 96)  # 8% smaller area
    assert main_face([edge, centre], SHAPE) is centre
    assert main_face([edge, centre], SHAPE, size_tolerance=0.0) is edge
    assert main_face([_face(0, 150, 100), _face(260, 160, 80)], SHAPE).box[0] == 0


def test_main_face_needs_a_face():
    with pytest.raises(ValueError):
        main_face([], SHAPE)


# ----- verify_faces with a stub detector ---------------------------------------------

RED, BLUE, GREY = (220, 30, 30), (30, 30, 220), (128, 128, 128)
RULE = MatchRule(pair_threshold=2.5, pair_maybe_threshold=1.0)


def _photo(height: int, width: int, faces: list[tuple[DetectedFace, tuple[int, int, int]]]
           ) -> tuple[np.ndarray, list[DetectedFace]]:
    """A grey picture with each face's box painted in one colour (the 'person')."""
    image = np.full((height, width, 3), GREY, dtype=np.uint8)
    for face, colour in faces:
        x, y, w, h = face.box
        image[y:y + h, x:x + w] = colour
    return image, [face for face, _ in faces]


class StubDetector:
    """Answers with the faces painted into each photo (found by the photo's shape)."""

    def __init__(self, photos: list[tuple[np.ndarray, list[DetectedFace]]]) -> None:
        self.faces = {image.shape: faces for image, faces in photos}

    def detect(self, image: np.ndarray, *, max_side: int | None = None) -> list[DetectedFace]:
        return sorted(self.faces.get(image.shape, []), key=lambda f: -f.box[2] * f.box[3])


def _colour_embedding(batch: np.ndarray) -> np.ndarray:
    """A numpy 'network': a face is its dominant colour (one unit axis per RGB channel)."""
    centre = batch[:, 40:72, 40:72, :].mean(axis=(1, 2))  # [n, 3]
    out = np.zeros((len(batch), 16), dtype=np.float32)
    out[np.arange(len(batch)), centre.argmax(axis=1)] = 1.0
    return out


def _engine(tmp_path, photos) -> FaceAttendance:
    cohort = np.random.default_rng(0).normal(size=(64, 16))
    recognizer = Recognizer(embedding_model=None, embedding_dim=16, rule=RULE,
                            cohort=cohort / np.linalg.norm(cohort, axis=1, keepdims=True),
                            architecture="stub", input_size=112, trained=True, version="stub",
                            _forward=_colour_embedding)
    settings = replace(get_settings(), data_dir=tmp_path, gallery_dir=tmp_path / "gallery")
    return FaceAttendance(StubDetector(photos), recognizer, Gallery(settings.gallery_dir),  # type: ignore[arg-type]
                          settings)


def test_verify_faces_answers_for_the_main_face_of_a_group_photo(tmp_path):
    big_red, small_blue = _face(20, 40, 160), _face(260, 140, 80)
    group = _photo(400, 600, [(big_red, RED), (small_blue, BLUE)])
    single = _photo(300, 300, [(_face(90, 80, 120), RED)])
    engine = _engine(tmp_path, [group, single])
    result = engine.verify_faces(group[0], single[0])
    assert result.verdict is SAME and result.same
    assert result.faces[0] == big_red and result.face_counts == (2, 1)
    assert result.note == "photo 1 has 2 faces; the largest, most central one was used."
    assert len(result.crops) == 2 and result.crops[0].shape == (112, 112, 3)
    named = engine.verify_faces(single[0], group[0], labels=("me.jpg", "class.jpg"))
    assert named.same and named.note.startswith("class.jpg has 2 faces;")


def test_verify_faces_with_equal_faces_uses_the_most_central(tmp_path):
    edge_red, centre_blue = _face(10, 150, 100), _face(250, 150, 100)
    group = _photo(400, 600, [(edge_red, RED), (centre_blue, BLUE)])
    red = _photo(300, 300, [(_face(90, 80, 120), RED)])
    result = _engine(tmp_path, [group, red]).verify_faces(group[0], red[0])
    assert result.faces[0] == centre_blue
    assert result.verdict is DIFFERENT and not result.same
    assert result.score == pytest.approx(0.0, abs=1e-6) and result.normalised < RULE.pair_maybe_threshold


def test_verify_faces_without_a_face_says_which_photo(tmp_path):
    single = _photo(300, 300, [(_face(90, 80, 120), RED)])
    blank = np.full((200, 200, 3), 90, dtype=np.uint8)
    engine = _engine(tmp_path, [single])
    with pytest.raises(NoFaceError, match="^blank.png: no face was found"):
        engine.verify_faces(single[0], blank, labels=("a.png", "blank.png"))


def test_recognizer_verify_is_graded_and_verify_pair_agrees(tmp_path):
    recognizer = _engine(tmp_path, []).recognizer
    a, b = np.eye(16)[0], np.eye(16)[2]
    same, other = recognizer.verify(a, a), recognizer.verify(a, b)
    assert same.verdict is SAME and other.verdict is DIFFERENT
    assert same.threshold == RULE.pair_threshold and same.maybe_threshold == RULE.pair_maybe_threshold
    raw, norm, ok = recognizer.verify_pair(a, b)
    assert (raw, ok) == (other.score, other.same) and math.isclose(norm, other.normalised)
