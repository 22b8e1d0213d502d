"""Live decisions over a whole track (issue 15): fused evidence, the track threshold, the
simulation the benchmark and the calibration share. Synthetic embeddings, no network."""

from __future__ import annotations

import numpy as np
import pytest

from model.core.matching import GalleryIndex, MatchRule
from model.learning.camera import live_jitter
from model.learning.tracks import calibrate_tracks, make_tracks, run_tracks, upper_bound_95
from model.school.checkin import TrackEvidence

D = 32


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def world(seed: int = 0, people: int = 3, photos: int = 3, noise: float = 0.25):
    """People's centres, a gallery of noisy photos of each, and a cohort of others."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.normal(size=(people, D)))
    jitter = noise * rng.normal(size=(people * photos, D)) / np.sqrt(D)
    gallery = unit(np.repeat(centres, photos, axis=0) + jitter)
    owners = np.repeat(np.arange(people), photos)
    cohort = unit(rng.normal(size=(80, D)))
    return rng, centres, gallery, owners, cohort


def test_evidence_is_the_unit_mean_per_track_and_starts_again_for_another_network():
    evidence = TrackEvidence()
    evidence.add([1, 2], np.array([[2.0, 0.0], [0.0, 1.0]]), "v1")
    evidence.add([1], np.array([[0.0, 3.0]]), "v1")
    fused, frames = evidence.fused([1, 2])
    np.testing.assert_allclose(fused, [[np.sqrt(0.5), np.sqrt(0.5)], [0.0, 1.0]])
    assert frames == [2, 1]
    evidence.add([1], np.array([[1.0, 0.0]]), "v2")  # a fine-tuned network took over
    assert evidence.frames(1) == 1
    evidence.keep_only([2])
    assert evidence.frames(1) == 0 and evidence.frames(2) == 1


def test_one_lucky_frame_names_a_photo_but_never_a_track():
    rng, centres, gallery, owners, cohort = world()
    rule = MatchRule(name_threshold=5.0, track_threshold=5.0, track_min_frames=3, adapt_to_gallery=False)
    index = GalleryIndex.prepare(gallery, owners, 3, cohort, rule)
    lucky = centres[0]  # one frame where the stranger looks exactly like person 0
    himself = unit(rng.normal(size=D))
    others = unit(himself + 0.3 * rng.normal(size=(9, D)) / np.sqrt(D))  # the rest: himself
    assert index.decide(lucky[None])[0].person == 0  # frame by frame, he would be named
    evidence = TrackEvidence()
    named = []
    for frame in np.vstack([lucky[None], others]):
        evidence.add([7], frame[None])
        fused, frames = evidence.fused([7])
        decision = index.decide_tracks(fused, frames)[0]
        named.append(decision.person)
    assert named[:2] == [None, None]  # too few frames: "checking"
    assert all(p is None for p in named)  # the track's evidence never names him


def test_a_student_is_named_once_the_track_has_enough_frames():
    rng, centres, gallery, owners, cohort = world(1)
    rule = MatchRule(name_threshold=5.0, track_threshold=5.0, track_min_frames=4, adapt_to_gallery=False)
    index = GalleryIndex.prepare(gallery, owners, 3, cohort, rule)
    frames = unit(centres[1] + 0.3 * rng.normal(size=(6, D)) / np.sqrt(D))
    decisions = [index.decide_tracks(unit(frames[: k + 1].mean(axis=0))[None], [k + 1])[0]
                 for k in range(6)]
    assert [d.reason for d in decisions[:3]] == ["checking"] * 3
    assert [d.person for d in decisions[3:]] == [1, 1, 1]


def test_the_track_threshold_rises_with_the_gallerys_own_threshold():
    _, _, gallery, owners, cohort = world(2)
    rule = MatchRule(name_threshold=3.0, track_threshold=5.0)
    index = GalleryIndex.prepare(gallery, owners, 3, cohort, rule)
    index.threshold = 4.2  # a hard camera raised the photo threshold by 1.2
    assert index.track_threshold == pytest.approx(6.2)
    index.threshold = 3.0
    assert index.track_threshold == pytest.approx(5.0)


def test_run_tracks_checks_in_students_at_their_first_named_frame_and_no_stranger():
    rng, centres, gallery, owners, cohort = world(3)
    rule = MatchRule(name_threshold=5.0, track_threshold=5.0, track_min_frames=5, adapt_to_gallery=False)
    index = GalleryIndex.prepare(gallery, owners, 3, cohort, rule)
    students = unit(centres[:, None, :] + 0.3 * rng.normal(size=(3, 20, D)) / np.sqrt(D))
    themselves = unit(rng.normal(size=(4, 1, D)))
    strangers = unit(themselves + 0.3 * rng.normal(size=(4, 20, D)) / np.sqrt(D))
    first, person = run_tracks(index, np.concatenate([students, strangers]))
    assert first.tolist() == [5, 5, 5, -1, -1, -1, -1]
    assert person.tolist() == [0, 1, 2, -1, -1, -1, -1]


def test_make_tracks_draws_frames_from_a_tracks_own_photos():
    frames = np.arange(4 * 2 * 1, dtype=np.float32).reshape(4, 2, 1)  # photo r, jitter j -> 2r+j
    tracks = make_tracks([np.array([0]), np.array([2, 3])], frames, 12, np.random.default_rng(0))
    assert tracks.shape == (2, 12, 1)
    assert set(tracks[0, :, 0].tolist()) <= {0.0, 1.0}
    assert set(tracks[1, :, 0].tolist()) <= {4.0, 5.0, 6.0, 7.0}


def test_calibration_keeps_look_alike_stranger_tracks_under_the_target():
    rng = np.random.default_rng(4)
    people = 40
    centres = unit(rng.normal(size=(people, D)))
    centres[20:] = unit(centres[:20] + 0.9 * rng.normal(size=(20, D)) / np.sqrt(D))  # look-alikes
    counts = [8] * 12 + [2] * (people - 12)
    names = np.array([f"p{i:02d}" for i, c in enumerate(counts) for _ in range(c)])
    base = np.repeat(centres, counts, axis=0)
    clean = unit(base + 0.4 * rng.normal(size=base.shape) / np.sqrt(D))
    frames = unit(clean[:, None, :] + 0.2 * rng.normal(size=(len(clean), 4, D)) / np.sqrt(D))
    cohort = unit(rng.normal(size=(60, D)))
    rule, record = calibrate_tracks(clean, frames, names, cohort, MatchRule(name_threshold=1.0),
                                    class_size=6, draws=3, far_target=0.05)
    assert rule.track_threshold >= 1.0 and rule.track_min_frames >= 3
    assert record["strangers_named"] <= 0.05 and record["stranger_tracks"] > 0
    assert 0.0 <= record["students_named_within_2s"] <= record["students_named"] <= 1.0


def test_live_jitter_keeps_the_crop_and_moves_with_strength():
    crop = np.random.default_rng(5).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    assert live_jitter(crop, np.random.default_rng(0), 0.0) is crop
    moved = live_jitter(crop, np.random.default_rng(0), 1.0)
    assert moved.shape == crop.shape and moved.dtype == np.uint8
    assert np.abs(moved.astype(int) - crop).mean() > 5


def test_upper_bound_of_a_rate_never_seen_is_about_three_over_n():
    assert upper_bound_95(0, 300) == pytest.approx(1 - 0.05 ** (1 / 300), rel=1e-6)
    assert upper_bound_95(3, 300) > upper_bound_95(0, 300)
    assert upper_bound_95(0, 0) == 1.0
