"""Open-set matching: who is this face, or is it nobody we know?

Raw scores are cosines of unit embeddings, computed in float64, so they never
saturate and two different people never tie by rounding. A raw cosine alone does
not transfer between cameras: a poor camera pulls every face towards every other
one, so a stranger's best cosine rises with the camera, not with the person. Three
pieces of evidence from the gallery itself make the decision hold when the camera
changes:

1. **S-norm against a cohort.** A face's score for a person is compared with the
   scores the same face, and the same person, get against *other* people: the
   cohort (a shipped set of LFW DevTrain faces plus the gallery's other people,
   who were photographed by the same camera). Only the ``cohort_top`` closest
   cohort scores count (adaptive S-norm), so the normalisation follows the
   look-alikes, not the average face. The normalised score is in cohort standard
   deviations: 0 = as close as a typical look-alike, 4 = far closer than any.
2. **A margin** between the best and the second-best person: two people almost
   equally close is an ambiguous face, not a match.
3. **A gallery-adaptive threshold**, re-derived whenever the gallery changes:
   each enrolled person's photos play strangers to everyone else (leave one person
   out), and the naming threshold is raised above the ``gallery_far`` quantile of
   those impostor scores when the camera makes the class look alike. It never
   drops below the rule's ``name_threshold``, calibrated on held-out LFW strangers.

Every number of the rule lives in ``MatchRule`` (stored in the model card with
where it came from). Everything here is numpy; nothing loads a model.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace

import numpy as np

#: Rows scored per numpy block (keeps temporaries small and BLAS single-threaded).
SCORE_CHUNK = 2048
#: Leave-one-person-out (the adaptive threshold) visits at most this many people: its cost
#: grows with the square of the class, and a sample this size already fixes a quantile.
MAX_LEFT_OUT = 60
#: Floor of a cohort's standard deviation (cosine units): a tiny cohort whose scores
#: happen to agree must not blow a normalised score up.
MIN_COHORT_STD = 0.02


@dataclass(frozen=True)
class MatchRule:
    """The tuned numbers of the open-set rule.

    name_threshold: normalised score the best person must reach to be named (1:N).
        Raising it keeps more strangers out and names fewer of the enrolled.
    margin: how far (normalised units) the best person must be ahead of the second.
        Raising it refuses more look-alike pairs.
    pair_threshold: normalised score for "same person" in 1:1 verification, chosen so that
        at most ``pair_far`` of different-person pairs reach it (1% on held-out DevTrain).
        Raising it calls fewer pairs "same person", rightly or wrongly.
    pair_maybe_threshold: from here up to ``pair_threshold`` a pair is "probably the same
        person, check": the accuracy-optimal point of a half-and-half pair list, where
        about one different-person pair in twenty still passes.
    min_cosine: a raw floor for naming (1:N): below this cosine nobody is named, however
        the cohort scores. Guards against a degenerate cohort.
    cohort_top: how many of the closest cohort scores the normalisation uses.
    top_k: a person's score is the mean of their ``top_k`` best photo scores.
    gallery_far: the share of the gallery's own leave-one-person-out impostors the
        adaptive threshold may let through (lower is stricter on a hard camera).
    adapt_to_gallery: raise the naming threshold from the gallery's own impostors
        (on by default; off only names more faces, wrongly, on a hard camera).
    track_threshold: normalised score a *track's* fused embedding (the mean of the unit
        embeddings of a followed face's frames) must reach to be named on the live page.
        Higher than ``name_threshold``: a stranger in front of a kiosk is judged over and
        over, so the threshold is chosen for the share of stranger *tracks* ever named
        (0.5% of look-alike strangers on held-out DevTrain), not of single photos. When the
        gallery raises the naming threshold (a hard camera), this rises by as much.
    track_min_frames: frames a track needs before it is named at all ("checking..." until
        then). More frames average out more of one frame's luck; each costs 1/15 s.
    """

    name_threshold: float = 3.0
    margin: float = 0.5
    pair_threshold: float = 2.5
    min_cosine: float = 0.2
    cohort_top: int = 16
    top_k: int = 2
    gallery_far: float = 0.02
    adapt_to_gallery: bool = True
    pair_maybe_threshold: float = -2.0
    track_threshold: float = 4.5
    track_min_frames: int = 5

    @classmethod
    def from_card(cls, card: dict[str, object] | None) -> MatchRule:
        """The rule stored in a model card (``card["match_rule"]``), defaults for the rest."""
        stored = (card or {}).get("match_rule") or {}
        known = {k: v for k, v in dict(stored).items() if k in cls.__dataclass_fields__}  # type: ignore[call-overload]
        return cls(**known)


def cosine_matrix(query: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """Cosine of every query row against every gallery row: float64 ``[m, n]``.

    Rows are normalised here, so callers may pass raw embeddings.
    """
    q = _unit(np.atleast_2d(np.asarray(query, dtype=np.float64)))
    g = _unit(np.asarray(gallery, dtype=np.float64).reshape(-1, q.shape[1]))
    out = np.empty((q.shape[0], g.shape[0]), dtype=np.float64)
    for start in range(0, g.shape[0], SCORE_CHUNK):
        out[:, start : start + SCORE_CHUNK] = q @ g[start : start + SCORE_CHUNK].T
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def aggregate_by_person(scores: np.ndarray, person_index: np.ndarray, people: int, top_k: int) -> np.ndarray:
    """Reduce per-photo scores ``[m, n]`` to per-person scores ``[m, people]`` (float64).

    Each person's score is the mean of their ``top_k`` best photo scores (or of all of
    them, when they have fewer). Vectorised: one sort, no loop over photos.
    """
    m = scores.shape[0]
    out = np.zeros((m, people), dtype=np.float64)
    if scores.shape[1] == 0 or people == 0 or m == 0:
        return out
    person_index = np.asarray(person_index, dtype=np.int64)
    order = np.lexsort((-scores, np.broadcast_to(person_index, scores.shape)), axis=1)
    sorted_scores = np.take_along_axis(scores, order, axis=1)
    sorted_people = person_index[order[0]]  # same person order in every row
    starts = np.searchsorted(sorted_people, np.arange(people))
    counts = np.bincount(person_index, minlength=people)
    k = np.minimum(counts, top_k)
    for rank in range(top_k):
        valid = rank < k
        out[:, valid] += sorted_scores[:, starts[valid] + rank]
    out /= np.maximum(k, 1)
    return out


def _top_stats(scores: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each row's ``top`` highest scores (``[m]`` each)."""
    if scores.shape[1] == 0:
        m = scores.shape[0]
        return np.zeros(m), np.ones(m)
    top = min(top, scores.shape[1])
    part = -np.partition(-scores, top - 1, axis=1)[:, :top]
    part = np.where(np.isfinite(part), part, np.nan)  # left-out people are -inf
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-empty row: mean of nothing
        mean, std = np.nanmean(part, axis=1), np.nanstd(part, axis=1)
    return np.nan_to_num(mean, nan=0.0), np.maximum(np.nan_to_num(std, nan=1.0), MIN_COHORT_STD)


@dataclass(frozen=True)
class Decision:
    """The rule's answer for one face.

    person: index of the named person (into the gallery's ``people``), or None.
    best: index of the closest person (named or not), None for an empty gallery.
    raw: float64 cosine of the closest person (top-k mean).
    normalised: S-normed score of the closest person; second: of the runner-up.
    threshold: the naming threshold in force for this gallery (normalised units).
    reason: why a face was refused ("" when named): "no one is enrolled",
        "not close enough", "too close to two people", and for tracks "checking" (too
        few frames yet to decide).
    """

    person: int | None
    best: int | None
    raw: float
    normalised: float
    second: float
    threshold: float
    reason: str = ""
    ranked: tuple[tuple[int, float, float], ...] = field(default=())  # (person, raw, normalised)


@dataclass
class GalleryIndex:
    """The gallery prepared for the rule: per-person cohort statistics and the adaptive
    threshold. Build it once per gallery change (``prepare``); it is read-only after."""

    matrix: np.ndarray  # float64 [n, d], unit rows
    person_index: np.ndarray  # int64 [n]
    people: int
    cohort: np.ndarray  # float64 [c, d], unit rows
    rule: MatchRule
    z_mean: np.ndarray = field(default_factory=lambda: np.zeros(0))  # [people]
    z_std: np.ndarray = field(default_factory=lambda: np.zeros(0))
    threshold: float = 0.0
    impostor_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    _pool_scores: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)), repr=False)

    # ----- building ------------------------------------------------------------------

    @classmethod
    def prepare(
        cls, matrix: np.ndarray, person_index: np.ndarray, people: int, cohort: np.ndarray, rule: MatchRule
    ) -> GalleryIndex:
        matrix = np.asarray(matrix, np.float64)
        cohort = np.asarray(cohort, np.float64)
        # The embedding width, from whichever of the two is not empty.
        d = matrix.shape[-1] if matrix.ndim == 2 and matrix.shape[-1] else cohort.shape[-1]
        index = cls(
            matrix=_unit(matrix.reshape(-1, d)),
            person_index=np.asarray(person_index, np.int64),
            people=people,
            cohort=_unit(cohort.reshape(-1, d)),
            rule=rule,
        )
        index._z_statistics()
        index._adapt_threshold()
        return index

    def _z_statistics(self) -> None:
        """Per person: their score against every cohort face and every other enrolled photo
        (``_pool_scores``, [people, cohort + photos]), and its top-N mean and deviation."""
        pool = np.concatenate([self.cohort, self.matrix])
        c = len(self.cohort)
        self._pool_scores = np.full((self.people, len(pool)), -np.inf)
        for p in range(self.people):
            own = self.person_index == p
            photo = cosine_matrix(pool, self.matrix[own])  # [pool, own photos]
            self._pool_scores[p] = aggregate_by_person(
                photo, np.zeros(int(own.sum()), np.int64), 1, self.rule.top_k
            )[:, 0]
            self._pool_scores[p, c + np.flatnonzero(own)] = -np.inf  # not their own photos
        self.z_mean, self.z_std = _top_stats(self._pool_scores, self.rule.cohort_top)

    def _adapt_threshold(self) -> None:
        """Leave one person out: their photos are strangers to the rest of the class.

        Nothing of the left-out person may inform the statistics, exactly as for a real
        stranger: their photos are masked out of everyone's cohort too.
        """
        rule = self.rule
        self.threshold = rule.name_threshold
        if self.people < 2 or not rule.adapt_to_gallery:
            self.impostor_scores = np.zeros(0)
            return
        c = len(self.cohort)
        scores = []
        visit = np.arange(self.people)
        if self.people > MAX_LEFT_OUT:  # a fixed sample, so a gallery always gets one threshold
            visit = np.random.default_rng(self.people).choice(self.people, MAX_LEFT_OUT, replace=False)
        for p in visit:
            own = self.person_index == p
            masked = self._pool_scores.copy()
            masked[:, c + np.flatnonzero(own)] = -np.inf
            z_mean, z_std = _top_stats(masked, rule.cohort_top)
            _, norm = self._scores(self.matrix[own], leave_out=int(p), z=(z_mean, z_std))
            scores.append(norm.max(axis=1))
        self.impostor_scores = np.concatenate(scores)
        if len(self.impostor_scores) >= 20:
            adaptive = float(np.quantile(self.impostor_scores, 1.0 - rule.gallery_far)) + 1e-9
            self.threshold = max(rule.name_threshold, adaptive)

    # ----- scoring -------------------------------------------------------------------

    def _scores(
        self, query: np.ndarray, leave_out: int | None = None, z: tuple[np.ndarray, np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(raw person scores, S-normed person scores), float64 ``[m, people]``.

        The query's own statistics (T-norm half) use the cohort plus every enrolled
        person but its closest one (or ``leave_out``), so a genuine face is not
        normalised against its own person's photos.
        """
        rule = self.rule
        q = _unit(np.atleast_2d(np.asarray(query, np.float64)))
        raw = aggregate_by_person(cosine_matrix(q, self.matrix), self.person_index, self.people, rule.top_k)
        if leave_out is not None:
            raw[:, leave_out] = -np.inf
        cohort_scores = cosine_matrix(q, self.cohort)
        if self.people:
            # Gallery people (other than the closest one) join the query's cohort.
            closest = np.argmax(raw, axis=1)
            mask = np.ones_like(raw, dtype=bool)
            mask[np.arange(len(q)), closest] = False
            if leave_out is not None:
                mask[:, leave_out] = False
            extra = np.where(mask, raw, -np.inf)
            cohort_scores = np.concatenate([cohort_scores, extra], axis=1)
        t_mean, t_std = _top_stats(cohort_scores, rule.cohort_top)
        z_mean, z_std = z if z is not None else (self.z_mean, self.z_std)
        with np.errstate(invalid="ignore"):
            norm = 0.5 * ((raw - z_mean[None, :]) / z_std[None, :] + (raw - t_mean[:, None]) / t_std[:, None])
        if leave_out is not None:
            norm[:, leave_out] = -np.inf
        return raw, norm

    @property
    def track_threshold(self) -> float:
        """The naming threshold for a track's fused evidence in this gallery: the rule's
        ``track_threshold``, raised by as much as the gallery raised the photo threshold."""
        return self.rule.track_threshold + max(0.0, self.threshold - self.rule.name_threshold)

    def decide(self, query: np.ndarray, candidates: int = 3) -> list[Decision]:
        """The rule's decision for each query embedding (rows of ``[m, d]``): one photo each."""
        return self._decide(query, candidates, self.threshold)

    def decide_tracks(self, fused: np.ndarray, frames: np.ndarray | list[int],
                      candidates: int = 3) -> list[Decision]:
        """The rule's decision for followed faces (live video), on the evidence of whole tracks.

        fused: ``[m, d]``, each row the mean of one track's unit embeddings (``fuse``);
        frames: how many frames went into each row. A track is named only when its fused
        score reaches ``track_threshold`` (and the margin and cosine floor hold) and it has
        at least ``rule.track_min_frames`` frames; before that its reason is "checking".
        """
        out = self._decide(fused, candidates, self.track_threshold)
        counts = np.atleast_1d(np.asarray(frames, np.int64))
        return [
            replace(d, person=None, reason="checking") if n < self.rule.track_min_frames else d
            for d, n in zip(out, counts, strict=True)
        ]

    def _decide(self, query: np.ndarray, candidates: int, threshold: float) -> list[Decision]:
        rule = self.rule
        q = np.atleast_2d(np.asarray(query, np.float64))
        if self.people == 0:
            return [
                Decision(None, None, 0.0, 0.0, 0.0, threshold, "no one is enrolled")
                for _ in range(len(q))
            ]
        raw, norm = self._scores(q)
        out = []
        for i in range(len(q)):
            order = np.argsort(-norm[i], kind="stable")
            best = int(order[0])
            second = float(norm[i, order[1]]) if self.people > 1 else -np.inf
            ranked = tuple((int(j), float(raw[i, j]), float(norm[i, j])) for j in order[:candidates])
            reason = ""
            if norm[i, best] < threshold or raw[i, best] < rule.min_cosine:
                reason = "not close enough"
            elif norm[i, best] - second < rule.margin:
                reason = "too close to two people"
            out.append(
                Decision(
                    person=None if reason else best,
                    best=best,
                    raw=float(raw[i, best]),
                    normalised=float(norm[i, best]),
                    second=float(second) if np.isfinite(second) else float("nan"),
                    threshold=threshold,
                    reason=reason,
                    ranked=ranked,
                )
            )
        return out


def would_name(normalised: np.ndarray, second: np.ndarray, raw: np.ndarray, threshold: float | np.ndarray,
               margin: float, min_cosine: float) -> np.ndarray:
    """The rule's naming condition elementwise over arrays of decisions (calibration sweeps
    thresholds over many at once): the best person's normalised score reaches ``threshold``,
    leads the runner-up (``second``; NaN or -inf: none) by ``margin``, and its cosine
    ``raw`` reaches ``min_cosine``. ``GalleryIndex.decide`` applies the same three tests one
    face at a time, with the reason for the first that fails."""
    runner_up = np.nan_to_num(second, nan=-np.inf)
    return (normalised >= threshold) & (normalised - runner_up >= margin) & (raw >= min_cosine)


def pair_score(a: np.ndarray, b: np.ndarray, cohort: np.ndarray, rule: MatchRule) -> tuple[float, float]:
    """1:1: (raw cosine, S-normed score) of two embeddings against the cohort (``pair_scores``
    for one pair)."""
    raw, norm = pair_scores(np.atleast_2d(a), np.atleast_2d(b), cohort, rule)
    return float(raw[0]), float(norm[0])


def pair_scores(
    a: np.ndarray, b: np.ndarray, cohort: np.ndarray, rule: MatchRule
) -> tuple[np.ndarray, np.ndarray]:
    """Row-aligned pairs ``a[i]`` vs ``b[i]``: (raw cosines, S-normed scores), float64 ``[n]``.

    Symmetric: each face's cohort statistics normalise the pair's cosine, and the two
    halves are averaged.
    """
    a64 = _unit(np.asarray(a, np.float64))
    b64 = _unit(np.asarray(b, np.float64))
    raw = np.sum(a64 * b64, axis=1)
    ma, sa = _top_stats(cosine_matrix(a64, cohort), rule.cohort_top)
    mb, sb = _top_stats(cosine_matrix(b64, cohort), rule.cohort_top)
    return raw, 0.5 * ((raw - ma) / sa + (raw - mb) / sb)
