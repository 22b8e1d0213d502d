"""Grouping faces of group photos by person (model.school.grouping), on made-up embeddings."""

from __future__ import annotations

import numpy as np

from model.core.matching import MatchRule
from model.school.grouping import face_scores, group_faces

RULE = MatchRule()
THRESHOLD, SINGLE = 1.0, -1.0


def class_photos(people: int, photos: int, *, noise: float = 0.35, seed: int = 0,
                 d: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(embeddings, photo of each face, person of each face, cohort): every person once in
    every photo, in a shuffled order, each face its person's direction plus noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(people, d))
    cohort = rng.normal(size=(200, d))
    rows, photo_of, person_of = [], [], []
    for p in range(photos):
        for who in rng.permutation(people):
            rows.append(centres[who] / np.linalg.norm(centres[who]) + noise * rng.normal(size=d) / np.sqrt(d))
            photo_of.append(p)
            person_of.append(who)
    x = np.array(rows)
    return x / np.linalg.norm(x, axis=1, keepdims=True), np.array(photo_of), np.array(person_of), cohort


def grouped(x: np.ndarray, photos: np.ndarray, cohort: np.ndarray, **kwargs: float):
    scores = face_scores(x, photos, cohort, RULE)
    return group_faces(scores, photos, threshold=kwargs.get("threshold", THRESHOLD),
                       single_threshold=kwargs.get("single", SINGLE))


def test_distinct_people_are_grouped_one_group_each():
    x, photos, people, cohort = class_photos(12, 4)
    grouping = grouped(x, photos, cohort)
    assert len(grouping.groups) == 12
    for group in grouping.groups:
        assert len({int(people[i]) for i in group}) == 1
        assert len(group) == 4
    assert grouping.unsure == ()
    assert all(place.sure for place in grouping.faces)


def test_two_faces_of_one_photo_are_never_in_one_group():
    # Twins: two people whose faces are nearly identical; a plain clustering merges them.
    x, photos, people, cohort = class_photos(6, 4, noise=0.3, seed=1)
    twin = np.flatnonzero(people == 1)
    x[twin] = x[people == 0] + 1e-3
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    grouping = grouped(x, photos, cohort, threshold=-50.0)  # merge anything allowed
    for group in grouping.groups:
        assert len({int(photos[i]) for i in group}) == len(group)


def test_a_face_that_fits_no_group_well_enough_is_not_sure():
    # Faces 0-1 and 2-3 are two people (photos 0 and 1); face 4 (photo 2) is near both of
    # them, but not near enough to join either.
    scores = np.full((5, 5), -3.0)
    scores[0, 1] = scores[1, 0] = scores[2, 3] = scores[3, 2] = 5.0
    scores[4, :4] = scores[:4, 4] = [0.5, 0.4, 0.3, 0.2]
    grouping = group_faces(scores, [0, 1, 0, 1, 2], threshold=THRESHOLD, single_threshold=SINGLE)
    assert grouping.groups == ((0, 1), (2, 3))
    assert grouping.unsure == (4,)
    place = grouping.faces[4]
    assert place.group is None and not place.sure and place.other == 0
    assert place.affinity == 0.45


def test_a_lone_face_clearly_nobody_else_is_a_group_of_its_own():
    x, photos, people, cohort = class_photos(6, 3, seed=3)
    stranger = np.random.default_rng(9).normal(size=(1, x.shape[1]))
    x = np.r_[x, stranger / np.linalg.norm(stranger)]
    photos = np.r_[photos, 0]
    grouping = grouped(x, photos, cohort)
    assert (len(x) - 1,) in grouping.groups
    assert grouping.faces[-1].sure


def test_groups_come_most_typical_first_and_output_is_deterministic():
    x, photos, _, cohort = class_photos(10, 5, noise=0.5, seed=4)
    first = grouped(x, photos, cohort)
    again = grouped(x.copy(), photos.copy(), cohort)
    assert first == again
    scores = face_scores(x, photos, cohort, RULE)
    for group in first.groups:
        if len(group) > 2:
            typical = [np.mean([scores[i, j] for j in group if j != i]) for i in group]
            assert typical == sorted(typical, reverse=True)
    assert [len(g) for g in first.groups] == sorted((len(g) for g in first.groups), reverse=True)
    assert list(first.labels()) == [-1 if p.group is None else p.group for p in first.faces]


def test_scores_are_symmetric_and_no_faces_give_no_groups():
    x, photos, _, cohort = class_photos(4, 2)
    scores = face_scores(x, photos, cohort, RULE)
    assert np.allclose(scores, scores.T, equal_nan=True)
    assert np.isnan(np.diag(scores)).all()
    empty = group_faces(face_scores(np.zeros((0, 8)), [], cohort[:, :8], RULE), [],
                        threshold=THRESHOLD, single_threshold=SINGLE)
    assert empty.groups == () and empty.faces == ()


def test_one_photo_alone_makes_every_clear_face_its_own_group():
    x, photos, _, cohort = class_photos(5, 1, seed=5)
    grouping = grouped(x, photos, cohort, single=np.inf)
    assert sorted(len(g) for g in grouping.groups) == [1] * 5


def test_the_cannot_link_holds_for_any_scores_with_or_without_refining():
    rng = np.random.default_rng(7)
    for trial in range(20):
        n = int(rng.integers(2, 40))
        scores = rng.normal(size=(n, n))
        scores = scores + scores.T
        photos = rng.integers(0, 4, n)
        for refine in (False, True):
            grouping = group_faces(scores, photos, threshold=float(rng.normal()) - 2,
                                   single_threshold=0.0, refine=refine)
            for group in grouping.groups:
                assert len({int(photos[i]) for i in group}) == len(group), (trial, refine)
            placed = sorted([i for g in grouping.groups for i in g] + list(grouping.unsure))
            assert placed == list(range(n))
