"""Faces of a few group photos grouped by person, for enrolling a class (issue 19).

Photo managers group faces by person with DBSCAN or Chinese Whispers and their users'
top complaints are look-alikes merged into one person, one person split in several, and
two faces of the same photo put in one person. A class photo gives us what they miss:
every student appears at most once in it. Here that is a hard rule (a *cannot-link*):
two faces of one photo are never in one group.

The evidence is the recognizer's own 1:1 score, cohort-normalised (S-norm) as
identification is, so it holds when the camera changes: each face is compared with the
model's cohort (LFW DevTrain faces) *and* with the other faces of its own photo, who are
certainly other people taken by the same camera (as identification lets the gallery's other
people join the cohort). ``face_scores`` makes that ``[n, n]`` matrix.

``group_faces`` then merges groups average-link (the mean normalised score between every
face of one group and every face of the other), best pair first, while the best mean
reaches ``threshold`` and the two groups share no photo; then each photo's faces are handed
back to the groups one to one, best-fitting pair first, and what is left merges again (an
early wrong merge no longer keeps a person's own face of that photo out). A group of one face is kept only
when it is clearly nobody else here (its mean score to every group stays below
``single_threshold``); other lone faces are *not sure*: listed, never forced into a group.
Everything is numpy and deterministic (ties go to the lower face number); nothing loads a
model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# The matching rule's own cohort statistic (one formula for identification, 1:1 and this).
from model.core.matching import MatchRule, _top_stats, cosine_matrix


@dataclass(frozen=True)
class FacePlace:
    """Where one face went and how sure that is.

    group: index into ``Grouping.groups``, or None when the face is *not sure*.
    affinity: the face's mean normalised score to the other faces of its group (for a face
        that is not sure, or alone in its group: to the closest group; NaN when there is none).
    closest_other: mean normalised score to the closest group it is not in (NaN: none).
    other: that group's index (None: none).
    sure: in a group, at least ``threshold`` from its group and ahead of every other group
        by the rule's ``margin`` (a lone face kept as a group is sure by construction).
    """

    group: int | None
    affinity: float
    closest_other: float
    other: int | None
    sure: bool


@dataclass(frozen=True)
class Grouping:
    """Faces grouped by person.

    groups: each group's face indices, most typical first (highest mean score to the rest
        of the group); groups ordered by size, largest first, then by their lowest face.
    faces: one ``FacePlace`` per face, in input order.
    threshold, single_threshold: the normalised scores used (``group_faces``).
    """

    groups: tuple[tuple[int, ...], ...]
    faces: tuple[FacePlace, ...]
    threshold: float
    single_threshold: float

    @property
    def unsure(self) -> tuple[int, ...]:
        """The faces left in no group, in input order."""
        return tuple(i for i, place in enumerate(self.faces) if place.group is None)

    def labels(self) -> np.ndarray:
        """Group index of every face (int64 ``[n]``), -1 for the faces that are not sure."""
        return np.array([-1 if p.group is None else p.group for p in self.faces], np.int64)


def face_scores(embeddings: np.ndarray, photos: Sequence[int] | np.ndarray, cohort: np.ndarray,
                rule: MatchRule, *, photo_cohort: bool = True) -> np.ndarray:
    """The symmetric S-normed score of every pair of faces: float64 ``[n, n]``, NaN diagonal.

    embeddings: ``[n, d]`` (unit or not); photos: which photo each face is in; cohort:
    the recognizer's ``[c, d]`` cohort. Each face's cosine to the other is standardised by
    the mean and deviation of its ``rule.cohort_top`` closest cohort scores, and the two
    halves averaged, as ``model.core.matching.pair_scores`` does for one pair. With
    ``photo_cohort`` the other faces of the face's own photo join its cohort.
    """
    x = np.asarray(embeddings, np.float64)
    n = len(x)
    if n == 0:
        return np.zeros((0, 0))
    photo = np.asarray(photos)
    raw = cosine_matrix(x, x)
    pool = cosine_matrix(x, cohort) if len(cohort) else np.zeros((n, 0))
    if photo_cohort:
        same_photo = (photo[:, None] == photo[None, :]) & ~np.eye(n, dtype=bool)
        pool = np.concatenate([pool, np.where(same_photo, raw, -np.inf)], axis=1)
    mean, std = _top_stats(pool, rule.cohort_top)
    z = (raw - mean[:, None]) / std[:, None]
    scores = 0.5 * (z + z.T)
    np.fill_diagonal(scores, np.nan)
    return scores


def group_faces(scores: np.ndarray, photos: Sequence[int] | np.ndarray, *, threshold: float,
                single_threshold: float, margin: float = 0.0, refine: bool = True) -> Grouping:
    """Group faces by person from their pairwise scores (``face_scores``).

    scores: symmetric float ``[n, n]`` (the diagonal is ignored); photos: the photo of each
    face (two faces of one photo never share a group).
    threshold: the mean normalised score two groups need to be merged. Raising it splits
        more people in several groups and leaves more faces not sure; lowering it merges
        more look-alikes.
    single_threshold: a face that joined nobody is its own group only when its mean score
        to every group stays below this (clearly nobody else here); otherwise it is not sure.
        Raising it keeps more lone faces as people of their own.
    margin: how far a face's own group must lead the closest other one for ``sure``.
    refine: after merging, give each photo's faces back to the groups one to one, best
        fitting pair first (``_reassign``): a face merged early into the wrong group no
        longer keeps its person's own face of that photo out.
    """
    s = np.asarray(scores, np.float64)
    photo = np.asarray(photos)
    n = len(s)
    if n == 0:
        return Grouping((), (), float(threshold), float(single_threshold))
    clusters = _merge(s, photo, threshold)
    if refine:
        clusters = _reassign(s, photo, clusters, threshold)
    multi = [c for c in clusters if len(c) > 1]
    lone = [c[0] for c in clusters if len(c) == 1]
    kept = [i for i in lone if _best_mean(s, i, multi)[0] < single_threshold]
    groups = [_typical_first(s, c) for c in multi] + [(i,) for i in kept]
    groups.sort(key=lambda g: (-len(g), min(g)))
    return Grouping(tuple(groups), _places(s, groups, n, threshold, margin),
                    float(threshold), float(single_threshold))


def _merge(s: np.ndarray, photo: np.ndarray, threshold: float) -> list[list[int]]:
    """Average-link merging of the single faces under the cannot-link (``_merge_clusters``)."""
    return _merge_clusters(s, photo, [[i] for i in range(len(s))], threshold)


def _merge_clusters(s: np.ndarray, photo: np.ndarray, start: list[list[int]],
                    threshold: float) -> list[list[int]]:
    """Average-link merging of the clusters ``start`` (face lists) under the cannot-link,
    best pair first, while the best mean reaches ``threshold``: the clusters, each in face
    order, ordered by their lowest face."""
    start = sorted((sorted(c) for c in start if c), key=lambda c: c[0])
    k = len(start)
    if k == 0:
        return []
    _, photo_ids = np.unique(photo, return_inverse=True)
    member = np.zeros((k, len(s)))
    for c, faces in enumerate(start):
        member[c, faces] = 1.0
    filled = np.nan_to_num(s, nan=0.0)
    np.fill_diagonal(filled, 0.0)
    sums = member @ filled @ member.T
    np.fill_diagonal(sums, 0.0)
    sizes = member.sum(axis=1)
    in_photo = np.zeros((k, int(photo_ids.max()) + 1), np.int64)
    for c, faces in enumerate(start):
        in_photo[c, photo_ids[faces]] = 1
    alive = np.ones(k, bool)
    members = [list(c) for c in start]
    upper = np.triu(np.ones((k, k), bool), 1)
    while True:
        mean = sums / np.outer(sizes, sizes)
        clash = (in_photo @ in_photo.T) > 0
        usable = upper & alive[:, None] & alive[None, :] & ~clash
        candidates = np.where(usable, mean, -np.inf)
        best = int(np.argmax(candidates))  # first of equal bests: the lowest clusters
        a, b = divmod(best, k)
        if not np.isfinite(candidates[a, b]) or candidates[a, b] < threshold:
            break
        sums[a] += sums[b]
        sums[:, a] += sums[:, b]
        sums[a, a] = 0.0
        sizes[a] += sizes[b]
        in_photo[a] |= in_photo[b]
        alive[b] = False
        sums[b], sums[:, b] = 0.0, 0.0
        members[a] = sorted(members[a] + members[b])
    return [members[i] for i in np.flatnonzero(alive)]


def _reassign(s: np.ndarray, photo: np.ndarray, clusters: list[list[int]], threshold: float,
              rounds: int = 5) -> list[list[int]]:
    """Greedy one-to-one assignment of each photo's faces to the groups of two faces or more
    (mean score to the group's other faces), best pair first, each pair at least
    ``threshold``; faces left over start groups of their own, which then merge as before.
    Repeated until nothing moves (at most ``rounds`` times)."""
    for _ in range(rounds):
        groups = [c for c in clusters if len(c) > 1]
        if not groups:
            return clusters
        member = np.zeros((len(groups), len(s)))
        for g, group in enumerate(groups):
            member[g, group] = 1.0
        sums = np.nan_to_num(s, nan=0.0) @ member.T  # [faces, groups]
        sizes = member.sum(axis=1)[None, :] - member.T  # the face itself never counts
        fit = np.where(sizes > 0, sums / np.maximum(sizes, 1), -np.inf)
        assigned: dict[int, list[int]] = {g: [] for g in range(len(groups))}
        loose = []
        for p in np.unique(photo):
            faces = np.flatnonzero(photo == p)
            block = fit[faces]
            order = np.argsort(-block, axis=None, kind="stable")
            face_done, group_done = set(), set()
            for flat in order:
                f, g = divmod(int(flat), block.shape[1])
                if block[f, g] < threshold:
                    break
                if f in face_done or g in group_done:
                    continue
                face_done.add(f)
                group_done.add(g)
                assigned[g].append(int(faces[f]))
            loose += [int(faces[f]) for f in range(len(faces)) if f not in face_done]
        moved = [sorted(a) for a in assigned.values() if a]
        singles = [[i] for i in sorted(loose)]
        again = _merge_clusters(s, photo, moved + singles, threshold)
        if sorted(map(tuple, again)) == sorted(map(tuple, clusters)):
            break
        clusters = again
    return clusters


def _best_mean(s: np.ndarray, face: int, groups: Sequence[Sequence[int]],
               skip: int | None = None) -> tuple[float, int | None]:
    """(the highest mean score of ``face`` to one of ``groups`` other than ``skip``, that
    group's index); (-inf, None) when there is none. The face itself never counts."""
    best, which = -np.inf, None
    for g, group in enumerate(groups):
        others = [j for j in group if j != face]
        if g == skip or not others:
            continue
        value = float(np.mean(s[face, others]))
        if value > best:
            best, which = value, g
    return best, which


def _typical_first(s: np.ndarray, group: Sequence[int]) -> tuple[int, ...]:
    """The group's faces by their mean score to the rest of the group, highest first."""
    block = s[np.ix_(group, group)]
    typical = np.nanmean(np.where(np.eye(len(group), dtype=bool), np.nan, block), axis=1)
    order = sorted(range(len(group)), key=lambda k: (-typical[k], group[k]))
    return tuple(group[k] for k in order)


def _places(s: np.ndarray, groups: Sequence[tuple[int, ...]], n: int, threshold: float,
            margin: float) -> tuple[FacePlace, ...]:
    group_of = {i: g for g, group in enumerate(groups) for i in group}
    places = []
    for i in range(n):
        g = group_of.get(i)
        other, which = _best_mean(s, i, groups, skip=g)
        if g is None:
            places.append(FacePlace(None, _nan(other), float("nan"), which, False))
            continue
        if len(groups[g]) == 1:
            places.append(FacePlace(g, float("nan"), _nan(other), which, True))
            continue
        own = float(np.mean(s[i, [j for j in groups[g] if j != i]]))
        sure = own >= threshold and own - other >= margin
        places.append(FacePlace(g, own, _nan(other), which, bool(sure)))
    return tuple(places)


def _nan(value: float) -> float:
    return value if np.isfinite(value) else float("nan")
