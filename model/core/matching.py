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

from dataclasses import dataclass, field, replace

import numpy as np

#: Rows scored per numpy block (keeps temporaries small and BLAS single-threaded).
SCORE_CHUNK = 2048
#: Leave-one-person-out (the adaptive threshold) visits at most this many people: its cost
#: grows with the square of the class, and a sample this size already fixes a quantile.
MAX_LEFT_OUT = 60
#: Photos whose pool scores ``GalleryIndex.prepare`` derives per numpy block (keeps the
#: block near 20 MB for a gallery of 2,000 people).
PREPARE_CHUNK = 512
#: Spare room in each person's list of closest pool scores beyond ``cohort_top``: a
#: person with up to this many photos can be left out (or added by ``with_person``)
#: from the list alone; more photos than this make ``with_person`` prepare afresh.
NEAR_SPARE = 8
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


def aggregate_by_person(scores: np.ndarray, person_index: np.ndarray, people: int, top_k: int,
                        groups: list[tuple[np.ndarray, np.ndarray]] | None = None) -> np.ndarray:
    """Reduce per-photo scores ``[m, n]`` to per-person scores ``[m, people]`` (float64).

    Each person's score is the mean of their ``top_k`` best photo scores (or of all of
    them, when they have fewer). Vectorised: people with the same number of photos form
    one ``[m, people, photos]`` block, sorted along its short last axis; no loop over
    photos. ``groups`` is ``person_groups(person_index, people)``, passed when the same
    gallery is scored many times.
    """
    m = scores.shape[0]
    out = np.zeros((m, people), dtype=np.float64)
    if scores.shape[1] == 0 or people == 0 or m == 0:
        return out
    for who, columns in groups if groups is not None else person_groups(person_index, people):
        out[:, who] = _top_k_mean(scores[:, columns], top_k)
    return out


def _top_k_mean(block: np.ndarray, top_k: int) -> np.ndarray:
    """``[m, g, photos]`` -> ``[m, g]``: the mean of the ``top_k`` best of each last axis."""
    if block.shape[2] > top_k:
        block = -np.sort(-block, axis=2)  # best first; only the best top_k count
    use = min(block.shape[2], top_k)
    total = block[:, :, 0].copy()
    for rank in range(1, use):
        total += block[:, :, rank]
    return total / use


def person_groups(person_index: np.ndarray, people: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The gallery's people grouped by photo count: for each count ``k``, ``(the people
    with k photos [g], their photo columns [g, k])`` (int64). People without a photo are
    in no group."""
    person_index = np.asarray(person_index, dtype=np.int64)
    counts = np.bincount(person_index, minlength=people)[:people]
    order = np.argsort(person_index, kind="stable")  # each person's columns side by side
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    groups = []
    for k in np.unique(counts[counts > 0]):
        who = np.flatnonzero(counts == k)
        groups.append((who, order[starts[who][:, None] + np.arange(k)]))
    return groups


def _dot(query: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``query @ rows.T`` for rows that are already unit (float64 ``[m, n]``), in blocks."""
    out = np.empty((query.shape[0], rows.shape[0]), dtype=np.float64)
    for start in range(0, rows.shape[0], SCORE_CHUNK):
        out[:, start : start + SCORE_CHUNK] = query @ rows[start : start + SCORE_CHUNK].T
    return out


def _closest(scores: np.ndarray, owners: np.ndarray, keep: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``keep`` highest scores and their owners (``[m, keep]`` each), in no
    particular order; rows shorter than ``keep`` are padded with -inf (owner -2)."""
    m, n = scores.shape
    if n < keep:
        scores = np.concatenate([scores, np.full((m, keep - n), -np.inf)], axis=1)
        owners = np.concatenate([owners, np.full((m, keep - n), -2, np.int64)], axis=1)
    elif n > keep:
        pick = np.argpartition(-scores, keep - 1, axis=1)[:, :keep]
        scores = np.take_along_axis(scores, pick, axis=1)
        owners = np.take_along_axis(owners, pick, axis=1)
    return scores, owners


def _top_stats(scores: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each row's ``top`` highest finite scores (``[m]``
    each): left-out people are -inf. A row with none: mean 0, deviation 1."""
    if scores.shape[1] == 0:
        m = scores.shape[0]
        return np.zeros(m), np.ones(m)
    top = min(top, scores.shape[1])
    part = -np.partition(-scores, top - 1, axis=1)[:, :top]
    finite = np.isfinite(part)
    count = finite.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):  # an all-empty row: mean of nothing
        mean = np.where(finite, part, 0.0).sum(axis=1) / count
        spread = np.where(finite, part - mean[:, None], 0.0)
        std = np.sqrt((spread * spread).sum(axis=1) / count)
    empty = count == 0
    return np.where(empty, 0.0, mean), np.maximum(np.where(empty, 1.0, std), MIN_COHORT_STD)


def _best_first(row: np.ndarray, count: int) -> np.ndarray:
    """Indices of the ``count`` highest values of ``row``, highest first, ties in index
    order (what a stable sort of the whole row gives, without sorting all of it)."""
    if count * 8 >= len(row):
        return np.argsort(-row, kind="stable")[:count]
    cutoff = np.partition(row, len(row) - count)[len(row) - count]
    near = np.flatnonzero(row >= cutoff)  # every tie at the cut-off is a candidate
    return near[np.lexsort((near, -row[near]))][:count]


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
    threshold. Build it once per gallery change (``prepare``, or ``with_person`` for one
    more person); it is read-only after.

    Each person's cohort statistics come from their scores against the pool (the cohort
    plus every other enrolled photo). Only the closest ``cohort_top + NEAR_SPARE`` pool
    scores of each person are kept, with whose photo each is: enough to recompute the
    statistics with any one person's photos masked out (leave one person out), and to
    add a person without scoring the whole pool again.
    """

    matrix: np.ndarray  # float64 [n, d], unit rows
    person_index: np.ndarray  # int64 [n]
    people: int
    cohort: np.ndarray  # float64 [c, d], unit rows
    rule: MatchRule
    z_mean: np.ndarray = field(default_factory=lambda: np.zeros(0))  # [people]
    z_std: np.ndarray = field(default_factory=lambda: np.zeros(0))
    threshold: float = 0.0
    impostor_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # [people, cohort_top + spare]: each person's closest pool scores, and the person whose
    # photo gave each (-1: a cohort face, -2: padding).
    _near_scores: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)), repr=False)
    _near_owners: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int64), repr=False)
    _groups: list[tuple[np.ndarray, np.ndarray]] | None = field(default=None, repr=False)

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
        index._groups = person_groups(index.person_index, people)
        index._z_statistics()
        index._adapt_threshold()
        return index

    @property
    def _spare(self) -> int:
        """Photos of one person the lists of closest scores can lose and still hold the
        ``cohort_top`` a statistic needs."""
        return self._near_scores.shape[1] - self.rule.cohort_top

    def _z_statistics(self) -> None:
        """Per person: their score against every cohort face and every other enrolled photo
        (the pool), the closest of those kept, and its top-N mean and deviation."""
        c, n = len(self.cohort), len(self.matrix)
        most = int(np.bincount(self.person_index).max()) if n else 0
        keep = self.rule.cohort_top + max(NEAR_SPARE, most)
        pool = np.concatenate([self.cohort, self.matrix])
        pool_owners = np.concatenate([np.full(c, -1, np.int64), self.person_index])
        self._near_scores = np.full((self.people, keep), -np.inf)
        self._near_owners = np.full((self.people, keep), -2, np.int64)
        # People with the same photo count side by side: their pool scores reshape into
        # [pool, people, photos] blocks without gathering columns.
        for who, columns in self._groups or []:
            step = max(1, PREPARE_CHUNK // columns.shape[1])
            for first in range(0, len(who), step):
                block_people, block = who[first : first + step], columns[first : first + step]
                g, k = block.shape
                photo = _dot(pool, self.matrix[block.ravel()]).reshape(len(pool), g, k)
                scores = _top_k_mean(photo, self.rule.top_k).T  # [g, pool]
                scores[np.repeat(np.arange(g), k), c + block.ravel()] = -np.inf  # not their own
                self._near_scores[block_people], self._near_owners[block_people] = _closest(
                    scores, np.broadcast_to(pool_owners, scores.shape), keep)
        self.z_mean, self.z_std = _top_stats(self._near_scores, self.rule.cohort_top)

    def with_person(self, embeddings: np.ndarray, position: int | None = None) -> GalleryIndex:
        """This index with one more person (their photos' embeddings ``[k, d]``), as
        ``prepare`` on the whole gallery would make it, at the cost of scoring the new
        photos only (plus the adaptive threshold's leave-one-person-out sample).

        position: the new person's index among the people (default: last); people from
        there on move up by one, so an index can follow a gallery sorted by name.
        """
        d = self.matrix.shape[1] if self.matrix.size else self.cohort.shape[1]
        new = _unit(np.asarray(embeddings, np.float64).reshape(-1, d))
        position = self.people if position is None else int(position)
        if not 0 <= position <= self.people:
            raise ValueError(f"position {position} is outside 0..{self.people}")
        shifted = np.where(self.person_index >= position, self.person_index + 1, self.person_index)
        person_index = np.concatenate([shifted, np.full(len(new), position, np.int64)])
        matrix = np.concatenate([self.matrix, new])
        if len(new) == 0 or self.people == 0 or len(new) > self._spare:
            return GalleryIndex.prepare(matrix, person_index, self.people + 1, self.cohort, self.rule)
        rule, c, keep = self.rule, len(self.cohort), self._near_scores.shape[1]
        # Everyone enrolled gains the new photos in their pool.
        gained = aggregate_by_person(_dot(new, self.matrix), self.person_index, self.people,
                                     rule.top_k, self._groups).T  # [people, k]
        owners = np.where(self._near_owners >= position, self._near_owners + 1, self._near_owners)
        near, near_owners = _closest(
            np.concatenate([self._near_scores, gained], axis=1),
            np.concatenate([owners, np.full(gained.shape, position, np.int64)], axis=1), keep)
        # The new person's own list: every cohort face and every other enrolled photo.
        pool = np.concatenate([self.cohort, self.matrix])
        own = aggregate_by_person(_dot(pool, new), np.zeros(len(new), np.int64), 1, rule.top_k)[:, 0]
        pool_owners = np.concatenate([np.full(c, -1, np.int64), shifted])
        own_near, own_owners = _closest(own[None], pool_owners[None], keep)
        index = GalleryIndex(matrix=matrix, person_index=person_index, people=self.people + 1,
                             cohort=self.cohort, rule=rule)
        index._groups = person_groups(person_index, index.people)
        index._near_scores = np.insert(near, position, own_near[0], axis=0)
        index._near_owners = np.insert(near_owners, position, own_owners[0], axis=0)
        index.z_mean, index.z_std = _top_stats(index._near_scores, rule.cohort_top)
        index._adapt_threshold()
        return index

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
        visit = np.arange(self.people)
        if self.people > MAX_LEFT_OUT:  # a fixed sample, so a gallery always gets one threshold
            visit = np.random.default_rng(self.people).choice(self.people, MAX_LEFT_OUT, replace=False)
        # Every visited person's photos at once, person by person in visiting order.
        turn = np.full(self.people, -1)
        turn[visit] = np.arange(len(visit))
        rows = np.flatnonzero(turn[self.person_index] >= 0)
        rows = rows[np.argsort(turn[self.person_index[rows]], kind="stable")]
        left_out = self.person_index[rows]
        z_mean, z_std = self._left_out_statistics(visit, turn)
        _, norm = self._scores(self.matrix[rows], leave_out=left_out,
                               z=(z_mean[turn[left_out]], z_std[turn[left_out]]))
        self.impostor_scores = norm.max(axis=1)
        if len(self.impostor_scores) >= 20:
            adaptive = float(np.quantile(self.impostor_scores, 1.0 - rule.gallery_far)) + 1e-9
            self.threshold = max(rule.name_threshold, adaptive)

    def _left_out_statistics(self, visit: np.ndarray, turn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Everyone's cohort statistics with each visited person's photos masked out:
        ``[len(visit), people]`` means and deviations. Only the people whose closest pool
        scores hold one of the left-out person's photos change; the lists hold
        ``cohort_top`` + spare scores and a person has at most spare photos, so the closest
        ``cohort_top`` of what is left are the ones the whole pool would give."""
        z_mean = np.repeat(self.z_mean[None], len(visit), axis=0)
        z_std = np.repeat(self.z_std[None], len(visit), axis=0)
        owner_turn = np.where(self._near_owners >= 0, turn[np.maximum(self._near_owners, 0)], -1)
        person, slot = np.nonzero(owner_turn >= 0)
        pairs = np.unique(np.stack([owner_turn[person, slot], person], axis=1), axis=0)
        if len(pairs):
            v, q = pairs[:, 0], pairs[:, 1]
            masked = np.where(self._near_owners[q] == visit[v][:, None], -np.inf, self._near_scores[q])
            z_mean[v, q], z_std[v, q] = _top_stats(masked, self.rule.cohort_top)
        return z_mean, z_std

    # ----- scoring -------------------------------------------------------------------

    def _scores(
        self, query: np.ndarray, leave_out: np.ndarray | None = None,
        z: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(raw person scores, S-normed person scores), float64 ``[m, people]``.

        The query's own statistics (T-norm half) use the cohort plus every enrolled
        person but its closest one (or the row's ``leave_out`` person, ``[m]``: the
        leave-one-person-out impostors), so a genuine face is not normalised against its
        own person's photos. ``z``: the people's statistics, ``[people]`` or per row
        ``[m, people]`` (default: the index's own).
        """
        rule = self.rule
        q = _unit(np.atleast_2d(np.asarray(query, np.float64)))
        every = np.arange(len(q))
        raw = aggregate_by_person(_dot(q, self.matrix), self.person_index, self.people, rule.top_k,
                                  self._groups)
        if leave_out is not None:
            raw[every, leave_out] = -np.inf
        cohort_scores = _dot(q, self.cohort)
        if self.people:
            # Gallery people (other than the closest one) join the query's cohort.
            closest = np.argmax(raw, axis=1)
            mask = np.ones_like(raw, dtype=bool)
            mask[every, closest] = False
            if leave_out is not None:
                mask[every, leave_out] = False
            extra = np.where(mask, raw, -np.inf)
            cohort_scores = np.concatenate([cohort_scores, extra], axis=1)
        t_mean, t_std = _top_stats(cohort_scores, rule.cohort_top)
        z_mean, z_std = z if z is not None else (self.z_mean, self.z_std)
        with np.errstate(invalid="ignore"):
            norm = 0.5 * ((raw - z_mean) / z_std + (raw - t_mean[:, None]) / t_std[:, None])
        if leave_out is not None:
            norm[every, leave_out] = -np.inf
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
            order = _best_first(norm[i], max(candidates, 2))
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
