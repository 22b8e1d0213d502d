"""The open-set rule (pure numpy): float64 scores, per-person aggregation, S-norm, margin,
the gallery-adaptive threshold, and strangers kept out when the camera changes."""

from __future__ import annotations

import numpy as np
import pytest

from model.core.matching import GalleryIndex, MatchRule, aggregate_by_person, cosine_matrix, pair_scores


def _brute_force(scores: np.ndarray, person_index: np.ndarray, people: int, top_k: int) -> np.ndarray:
    out = np.zeros((scores.shape[0], people), dtype=np.float64)
    for i in range(scores.shape[0]):
        for p in range(people):
            mine = sorted((scores[i, j] for j in range(scores.shape[1]) if person_index[j] == p),
                          reverse=True)[:top_k]
            out[i, p] = np.mean(mine) if mine else 0.0
    return out


@pytest.mark.parametrize("seed, shuffled", [(0, False), (1, True), (2, False), (3, True)])
@pytest.mark.parametrize("top_k", [1, 2, 3, 5])
def test_aggregate_by_person_matches_brute_force(seed, shuffled, top_k):
    rng = np.random.default_rng(seed)
    people = int(rng.integers(1, 12))
    counts = rng.integers(1, 7, size=people)  # some people with a single image
    person_index = np.repeat(np.arange(people), counts).astype(np.int32)
    if shuffled:
        rng.shuffle(person_index)
    scores = rng.random((int(rng.integers(1, 5)), len(person_index)))
    got = aggregate_by_person(scores, person_index, people, top_k)
    assert got.shape == (scores.shape[0], people) and got.dtype == np.float64
    np.testing.assert_allclose(got, _brute_force(scores, person_index, people, top_k), atol=1e-12)


def test_aggregate_by_person_empty_and_ties():
    assert aggregate_by_person(np.zeros((2, 0)), np.zeros(0, np.int32), 0, 2).shape == (2, 0)
    got = aggregate_by_person(np.array([[0.5, 0.5, 0.5, 0.9]]), np.array([0, 0, 0, 1]), 2, 2)
    np.testing.assert_allclose(got, [[0.5, 0.9]])


def test_cosines_are_float64_and_never_saturate():
    rng = np.random.default_rng(0)
    base = rng.normal(size=128)
    # Two different people, both extremely close to the query: float32 rounding or a
    # sigmoid would show both as 1.00; float64 cosines keep them apart.
    a = base + 1e-4 * rng.normal(size=128)
    b = base + 2e-4 * rng.normal(size=128)
    scores = cosine_matrix(base[None], np.stack([a, b]))
    assert scores.dtype == np.float64
    assert scores[0, 0] != scores[0, 1] and scores[0, 0] > scores[0, 1]
    assert np.all(scores < 1.0)


def _class(rng: np.random.Generator, people: int, per: int, noise: float, dim: int = 32,
           shift: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    centres = rng.normal(size=(people, dim))
    rows = np.concatenate([c + noise * rng.normal(size=(per, dim)) for c in centres])
    if shift is not None:  # a camera that pulls every face towards one look
        rows = rows + shift
    return centres, rows, np.repeat(np.arange(people), per)


def test_enrolled_are_named_and_strangers_refused():
    rng = np.random.default_rng(1)
    centres, gallery, owners = _class(rng, 20, 5, 0.6)
    cohort = rng.normal(size=(300, 32))
    index = GalleryIndex.prepare(gallery, owners, 20, cohort, MatchRule())
    queries = centres + 0.6 * rng.normal(size=centres.shape)
    named = [d.person for d in index.decide(queries)]
    assert np.mean([p == i for i, p in enumerate(named)]) >= 0.9
    strangers = rng.normal(size=(200, 32)) + 0.6 * rng.normal(size=(200, 32))
    decisions = index.decide(strangers)
    assert np.mean([d.person is not None for d in decisions]) <= 0.08
    first = next(d for d in decisions if d.person is None)
    assert first.person is None and first.best is not None and first.reason == "not close enough"
    assert len(first.ranked) == 3 and first.ranked[0][0] == first.best


def test_a_shifted_camera_does_not_let_strangers_in():
    """Every face under the new camera looks alike (a shared offset): raw cosines of strangers
    rise, but the rule, normalised by the gallery's own people, still refuses them."""
    rng = np.random.default_rng(2)
    clean_centres, clean_gallery, owners = _class(rng, 30, 5, 0.7)
    cohort = rng.normal(size=(300, 32))  # clean, unshifted cohort (like shipped LFW)
    clean_strangers = rng.normal(size=(300, 32)) + 0.7 * rng.normal(size=(300, 32))
    shift = 2.0 * rng.normal(size=32)
    shifted = GalleryIndex.prepare(clean_gallery + shift, owners, 30, cohort, MatchRule())
    clean = GalleryIndex.prepare(clean_gallery, owners, 30, cohort, MatchRule())
    raw_clean = cosine_matrix(clean_strangers, clean_gallery).max(axis=1)
    raw_shifted = cosine_matrix(clean_strangers + shift, clean_gallery + shift).max(axis=1)
    # A raw threshold that kept 95% of strangers out on the clean camera lets most in now.
    assert np.mean(raw_shifted >= np.quantile(raw_clean, 0.95)) > 0.5
    for index, offset in ((clean, 0.0), (shifted, shift)):
        decisions = index.decide(clean_strangers + offset)
        assert np.mean([d.person is not None for d in decisions]) <= 0.06
        queries = clean_centres + offset + 0.7 * rng.normal(size=clean_centres.shape)
        named = [d.person for d in index.decide(queries)]
        assert np.mean([p == i for i, p in enumerate(named)]) >= 0.85


def test_margin_refuses_a_face_between_two_people():
    rng = np.random.default_rng(3)
    centres, gallery, owners = _class(rng, 10, 5, 0.3)
    cohort = rng.normal(size=(200, 32))
    rule = MatchRule(name_threshold=1.0, margin=2.0)
    index = GalleryIndex.prepare(gallery, owners, 10, cohort, rule)
    between = (centres[0] + centres[1]) / 2
    decision = index.decide(between[None])[0]
    assert decision.person is None and decision.reason in ("too close to two people", "not close enough")
    assert {decision.ranked[0][0], decision.ranked[1][0]} == {0, 1}


def test_adaptive_threshold_rises_when_the_class_holds_look_alikes():
    """Ten pairs of near-twins: each twin plays a stranger to the other (leave one person
    out), scores high, and the gallery's naming threshold rises above the rule's floor."""
    rng = np.random.default_rng(4)
    cohort = rng.normal(size=(300, 32))
    _, spread, owners = _class(rng, 20, 5, 0.5)
    twins = np.concatenate([c + 0.2 * rng.normal(size=32) + 0.3 * rng.normal(size=(5, 32))
                            for c in rng.normal(size=(10, 32)) for _ in range(2)])
    rule = MatchRule()
    easy = GalleryIndex.prepare(spread, owners, 20, cohort, rule)
    hard = GalleryIndex.prepare(twins, owners, 20, cohort, rule)
    assert easy.threshold >= rule.name_threshold
    assert hard.threshold > easy.threshold and hard.threshold > rule.name_threshold
    assert len(hard.impostor_scores) == 100  # every enrolled photo played a stranger


def test_empty_and_single_person_galleries():
    rng = np.random.default_rng(5)
    cohort = rng.normal(size=(50, 8))
    empty = GalleryIndex.prepare(np.zeros((0, 8)), np.zeros(0, np.int64), 0, cohort, MatchRule())
    decision = empty.decide(rng.normal(size=(1, 8)))[0]
    assert decision.person is None and decision.best is None and decision.reason == "no one is enrolled"
    one = GalleryIndex.prepare(rng.normal(size=(3, 8)), np.zeros(3, np.int64), 1, cohort, MatchRule())
    assert len(one.decide(rng.normal(size=(2, 8)))) == 2


def test_pair_scores_separate_same_from_different():
    rng = np.random.default_rng(6)
    centres = rng.normal(size=(100, 32))
    a = centres + 0.5 * rng.normal(size=centres.shape)
    b = centres + 0.5 * rng.normal(size=centres.shape)
    cohort = rng.normal(size=(300, 32))
    rule = MatchRule()
    _, same = pair_scores(a, b, cohort, rule)
    _, diff = pair_scores(a, np.roll(b, 1, axis=0), cohort, rule)
    assert np.mean(same >= rule.pair_threshold) >= 0.9
    assert np.mean(diff >= rule.pair_threshold) <= 0.05


def test_rule_from_card_ignores_unknown_keys():
    rule = MatchRule.from_card({"match_rule": {"name_threshold": 4.0, "bogus": 1}})
    assert rule.name_threshold == 4.0 and rule.margin == MatchRule().margin
    assert MatchRule.from_card(None) == MatchRule()
