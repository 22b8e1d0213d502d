"""The fast ``GalleryIndex`` (short lists of each person's closest pool scores, people
grouped by photo count, ``with_person``) gives the open-set rule's results exactly as the
first implementation did: same cohort statistics, impostor scores, thresholds and
decisions, to float tolerance. The first implementation is kept here as the reference:
a full ``[people, pool]`` score matrix, copied and masked once per left-out person."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from model.core.matching import (
    MAX_LEFT_OUT,
    MIN_COHORT_STD,
    GalleryIndex,
    MatchRule,
    aggregate_by_person,
)

# ----- the reference: the rule as first written (O(people^2) per prepare) ---------------


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _cosine(query: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    return _unit(np.atleast_2d(query)) @ _unit(gallery).T


def _ref_aggregate(scores: np.ndarray, person_index: np.ndarray, people: int, top_k: int) -> np.ndarray:
    m = scores.shape[0]
    out = np.zeros((m, people), dtype=np.float64)
    if scores.shape[1] == 0 or people == 0 or m == 0:
        return out
    person_index = np.asarray(person_index, dtype=np.int64)
    order = np.lexsort((-scores, np.broadcast_to(person_index, scores.shape)), axis=1)
    sorted_scores = np.take_along_axis(scores, order, axis=1)
    sorted_people = person_index[order[0]]
    starts = np.searchsorted(sorted_people, np.arange(people))
    counts = np.bincount(person_index, minlength=people)
    k = np.minimum(counts, top_k)
    for rank in range(top_k):
        valid = rank < k
        out[:, valid] += sorted_scores[:, starts[valid] + rank]
    out /= np.maximum(k, 1)
    return out


def _ref_top_stats(scores: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    if scores.shape[1] == 0:
        return np.zeros(scores.shape[0]), np.ones(scores.shape[0])
    top = min(top, scores.shape[1])
    part = -np.partition(-scores, top - 1, axis=1)[:, :top]
    part = np.where(np.isfinite(part), part, np.nan)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean, std = np.nanmean(part, axis=1), np.nanstd(part, axis=1)
    return np.nan_to_num(mean, nan=0.0), np.maximum(np.nan_to_num(std, nan=1.0), MIN_COHORT_STD)


class _Reference:
    def __init__(self, matrix, person_index, people, cohort, rule):
        self.matrix = _unit(np.asarray(matrix, np.float64))
        self.cohort = _unit(np.asarray(cohort, np.float64))
        self.person_index, self.people, self.rule = np.asarray(person_index, np.int64), people, rule
        pool = np.concatenate([self.cohort, self.matrix])
        c = len(self.cohort)
        self.pool_scores = np.full((people, len(pool)), -np.inf)
        for p in range(people):
            own = self.person_index == p
            photo = _cosine(pool, self.matrix[own])
            one = np.zeros(int(own.sum()), np.int64)
            self.pool_scores[p] = _ref_aggregate(photo, one, 1, rule.top_k)[:, 0]
            self.pool_scores[p, c + np.flatnonzero(own)] = -np.inf
        self.z_mean, self.z_std = _ref_top_stats(self.pool_scores, rule.cohort_top)
        self.threshold, self.impostor_scores = rule.name_threshold, np.zeros(0)
        if people < 2 or not rule.adapt_to_gallery:
            return
        visit = np.arange(people)
        if people > MAX_LEFT_OUT:
            visit = np.random.default_rng(people).choice(people, MAX_LEFT_OUT, replace=False)
        scores = []
        for p in visit:
            own = self.person_index == p
            masked = self.pool_scores.copy()
            masked[:, c + np.flatnonzero(own)] = -np.inf
            z = _ref_top_stats(masked, rule.cohort_top)
            _, norm = self.scores(self.matrix[own], leave_out=int(p), z=z)
            scores.append(norm.max(axis=1))
        self.impostor_scores = np.concatenate(scores)
        if len(self.impostor_scores) >= 20:
            adaptive = float(np.quantile(self.impostor_scores, 1.0 - rule.gallery_far)) + 1e-9
            self.threshold = max(rule.name_threshold, adaptive)

    def scores(self, query, leave_out=None, z=None):
        rule = self.rule
        q = _unit(np.atleast_2d(np.asarray(query, np.float64)))
        raw = _ref_aggregate(_cosine(q, self.matrix), self.person_index, self.people, rule.top_k)
        if leave_out is not None:
            raw[:, leave_out] = -np.inf
        cohort_scores = _cosine(q, self.cohort)
        closest = np.argmax(raw, axis=1)
        mask = np.ones_like(raw, dtype=bool)
        mask[np.arange(len(q)), closest] = False
        if leave_out is not None:
            mask[:, leave_out] = False
        cohort_scores = np.concatenate([cohort_scores, np.where(mask, raw, -np.inf)], axis=1)
        t_mean, t_std = _ref_top_stats(cohort_scores, rule.cohort_top)
        z_mean, z_std = z if z is not None else (self.z_mean, self.z_std)
        with np.errstate(invalid="ignore"):
            norm = 0.5 * ((raw - z_mean[None, :]) / z_std[None, :] + (raw - t_mean[:, None]) / t_std[:, None])
        if leave_out is not None:
            norm[:, leave_out] = -np.inf
        return raw, norm

    def decide(self, query):
        """(named person or -1, normalised score of the best) per query row."""
        raw, norm = self.scores(query)
        best = np.argmax(norm, axis=1)
        second = np.sort(norm, axis=1)[:, -2] if self.people > 1 else np.full(len(norm), -np.inf)
        top = norm[np.arange(len(norm)), best]
        named = ((top >= self.threshold) & (raw[np.arange(len(norm)), best] >= self.rule.min_cosine)
                 & (top - second >= self.rule.margin))
        return np.where(named, best, -1), top


# ----- galleries to compare on ------------------------------------------------------------


def _gallery(seed: int, people: int, per: int | tuple[int, int], dim: int = 16, spread: float = 0.8):
    """Random unit embeddings: ``people`` centres, ``per`` photos each (or a random count in
    the range), and queries: some enrolled people's faces, some strangers."""
    rng = np.random.default_rng(seed)
    counts = (np.full(people, per) if isinstance(per, int)
              else rng.integers(per[0], per[1] + 1, size=people))
    centres = rng.normal(size=(people, dim))
    rows = np.concatenate([c + spread * rng.normal(size=(k, dim))
                           for c, k in zip(centres, counts, strict=True)])
    owners = np.repeat(np.arange(people), counts)
    cohort = rng.normal(size=(120, dim))
    queries = np.concatenate([centres[: min(people, 25)] + spread * rng.normal(size=(min(people, 25), dim)),
                              rng.normal(size=(25, dim))])
    return _unit(rows), owners, cohort, queries


def _assert_same(index: GalleryIndex, reference: _Reference, queries: np.ndarray) -> None:
    np.testing.assert_allclose(index.z_mean, reference.z_mean, rtol=0, atol=1e-9)
    np.testing.assert_allclose(index.z_std, reference.z_std, rtol=0, atol=1e-9)
    np.testing.assert_allclose(index.impostor_scores, reference.impostor_scores, rtol=0, atol=1e-8)
    assert index.threshold == pytest.approx(reference.threshold, abs=1e-8)
    named, top = reference.decide(queries)
    decisions = index.decide(queries)
    assert [-1 if d.person is None else d.person for d in decisions] == named.tolist()
    np.testing.assert_allclose([d.normalised for d in decisions], top, rtol=0, atol=1e-8)


@pytest.mark.parametrize("people, per, top_k, cohort_top", [
    (1, 3, 2, 16), (2, 1, 2, 16), (7, 2, 5, 16), (30, 2, 5, 16), (30, (1, 6), 2, 16),
    (61, 2, 5, 16), (90, (1, 12), 5, 16), (140, 3, 1, 4), (12, (1, 3), 3, 200),
])
def test_prepare_gives_the_reference_rule(people, per, top_k, cohort_top):
    rows, owners, cohort, queries = _gallery(people, people, per)
    rule = MatchRule(top_k=top_k, cohort_top=cohort_top, name_threshold=2.0, margin=0.5)
    index = GalleryIndex.prepare(rows, owners, people, cohort, rule)
    _assert_same(index, _Reference(rows, owners, people, cohort, rule), queries)


@pytest.mark.parametrize("people, per, at", [(1, 2, 0), (5, 2, 2), (40, (1, 5), 17), (70, 2, 70),
                                             (64, (2, 4), 0), (20, (1, 3), 9)])
def test_with_person_gives_what_prepare_gives(people, per, at):
    """Adding one person (at a sorted position, as a gallery sorted by name would) matches
    the reference rule on the whole gallery, and so does a chain of additions."""
    rows, owners, cohort, queries = _gallery(100 + people, people + 1, per)
    rule = MatchRule(top_k=5, cohort_top=16, name_threshold=2.0, margin=0.5)
    new = owners == people  # the last person joins at position ``at``
    index = GalleryIndex.prepare(rows[~new], owners[~new], people, cohort, rule)
    index = index.with_person(rows[new], at)
    moved = np.where(owners[~new] >= at, owners[~new] + 1, owners[~new])
    after = np.concatenate([moved, np.full(int(new.sum()), at)])
    everyone = np.concatenate([rows[~new], rows[new]])
    _assert_same(index, _Reference(everyone, after, people + 1, cohort, rule), queries)


def test_a_chain_of_additions_and_a_person_with_many_photos():
    rows, owners, cohort, queries = _gallery(7, 30, (1, 4))
    rule = MatchRule(top_k=2, cohort_top=8)
    index = GalleryIndex.prepare(rows[:0], owners[:0], 0, cohort, rule)
    for p in range(30):
        index = index.with_person(rows[owners == p])
    many = np.random.default_rng(1).normal(size=(25, rows.shape[1]))  # more than NEAR_SPARE
    index = index.with_person(many, 3)
    everyone = np.concatenate([rows, _unit(many)])
    after = np.concatenate([np.where(owners >= 3, owners + 1, owners), np.full(25, 3)])
    _assert_same(index, _Reference(everyone, after, 31, cohort, rule), queries)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grouped_aggregation_is_the_sorted_one(seed):
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 7, size=15)
    owners = rng.permutation(np.repeat(np.arange(15), counts))
    scores = rng.normal(size=(6, len(owners)))
    for top_k in (1, 2, 5):
        got = aggregate_by_person(scores, owners, 15, top_k)
        np.testing.assert_allclose(got, _ref_aggregate(scores, owners, 15, top_k), rtol=0, atol=1e-15)
