"""Live tracks simulated from LFW: how often a look-alike stranger standing at the kiosk is
checked in, and how soon a student is (issue 15).

A *track* is what the live page sees of one face: a run of frames, each one of the
person's photos as the live camera would deliver it (``camera.live_jitter`` at a random
strength, and under the shifted classroom camera for the hard condition). The frames go
through the live page's own decision path: ``TrackEvidence`` fuses them and
``GalleryIndex.decide_tracks`` names the track or not, frame after frame; the first frame
at which a track is named is its check-in.

Used twice, on different people:

- ``calibrate_tracks``: the rule's ``track_threshold`` and ``track_min_frames``, chosen on
  held-out LFW DevTrain people (never trained on) so that at most ``far_target`` of
  look-alike stranger tracks are ever named;
- ``benchmarks/bench_tracks.py``: the figures on DevTest, clean and shifted, for a class of
  30 and a gallery of 900, with strangers picked as the enrolled people's look-alikes.

Everything takes embeddings already computed (``frame_embeddings``), so one embedding
pass serves every class drawn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from model.core.matching import GalleryIndex, MatchRule, would_name
from model.school.checkin import TrackEvidence

#: Frames a stranger track lasts: a minute in front of the kiosk, as the live page looks at a
#: face it has not named (every frame for its first 30, then about once a second).
TRACK_FRAMES = 90
#: A student is "checked in within about 2 s" when named within this many frames (15 fps).
QUICK_FRAMES = 30
#: Jittered versions embedded per photo; a track draws its frames among them.
JITTERS = 8
#: A track shows its person in up to this many different photos (a kiosk sees one visit;
#: several photos stand for the head turning and the light changing during it).
PHOTOS_PER_TRACK = 3
#: Look-alike strangers per enrolled person, and tracks per stranger and per student.
LOOK_ALIKES = 3
TRACKS_EACH = 2
#: Share of look-alike stranger tracks that may ever be named (calibration target).
TRACK_FAR = 0.005
#: The track lengths tried as ``track_min_frames`` during calibration.
MIN_FRAMES_OPTIONS = (3, 5, 8, 12)


def frame_embeddings(embed: Callable[[np.ndarray], np.ndarray], crops: np.ndarray, *,
                     jitters: int = JITTERS, shifted: bool = False, seed: int = 0,
                     batch: int = 512) -> np.ndarray:
    """``jitters`` live-camera versions of each aligned crop, embedded: float32 ``[n, J, d]``.

    Each version gets its own random strength (0.2-1), and every other one is mirrored, as
    the live page embeds them (``web_app.live``); ``shifted`` also passes it through the
    shifted classroom camera with the face 0.8-1.25 times the benchmark's size.
    """
    from model.learning.camera import FACE_CROP, SHIFT_CROP_SIDE, live_jitter, shifted_camera

    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    pending: list[np.ndarray] = []

    def flush() -> None:
        if pending:
            out.append(np.asarray(embed(np.stack(pending)), np.float32))
            pending.clear()

    for crop in crops:
        for j in range(jitters):
            frame = live_jitter(crop, rng, rng.uniform(0.2, 1.0))
            if j % 2:
                frame = frame[:, ::-1]  # the live page mirrors every other frame of a track
            if shifted:
                frame = shifted_camera(frame, seed=int(rng.integers(1 << 30)),
                                       scale=SHIFT_CROP_SIDE / FACE_CROP * rng.uniform(0.8, 1.25))
            pending.append(frame)
            if len(pending) >= batch:
                flush()
    flush()
    flat = np.concatenate(out) if out else np.zeros((0, 0), np.float32)
    return flat.reshape(len(crops), jitters, -1)


def make_tracks(sources: Sequence[np.ndarray], frames: np.ndarray, length: int,
                rng: np.random.Generator) -> np.ndarray:
    """Tracks ``[T, length, d]``: track ``t``'s frames drawn from the jittered versions
    (``frames[row]``) of up to ``PHOTOS_PER_TRACK`` of its ``sources`` rows."""
    jitters = frames.shape[1]
    out = np.zeros((len(sources), length, frames.shape[2]), np.float32)
    for t, rows in enumerate(sources):
        chosen = rng.choice(np.asarray(rows), min(PHOTOS_PER_TRACK, len(rows)), replace=False)
        pick = rng.choice(chosen, length)
        out[t] = frames[pick, rng.integers(0, jitters, length)]
    return out


def run_tracks(index: GalleryIndex, tracks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The live decision, frame after frame: (frames until named, or -1 if never ``[T]``;
    the person named, or -1 ``[T]``). A named track stops (it has checked in)."""
    first = np.full(len(tracks), -1, np.int64)
    person = np.full(len(tracks), -1, np.int64)
    evidence = TrackEvidence()
    active = list(range(len(tracks)))
    for step in range(tracks.shape[1]):
        if not active:
            break
        evidence.add(active, tracks[active, step])
        fused, counts = evidence.fused(active)
        still = []
        for t, decision in zip(active, index.decide_tracks(fused, counts), strict=True):
            if decision.person is None:
                still.append(t)
            else:
                first[t], person[t] = step + 1, decision.person
        active = still
    return first, person


def track_scores(index: GalleryIndex, tracks: np.ndarray) -> dict[str, np.ndarray]:
    """Every frame's fused decision with no threshold (for calibration): ``normalised``,
    ``second``, ``raw`` and ``best`` person, each ``[T, L]``."""
    open_index = replace(index, rule=replace(index.rule, track_threshold=-np.inf, name_threshold=0.0,
                                             track_min_frames=1))
    open_index.threshold = -np.inf
    shape = tracks.shape[:2]
    out = {key: np.zeros(shape) for key in ("normalised", "second", "raw")}
    out["best"] = np.zeros(shape, np.int64)
    evidence = TrackEvidence()
    ids = list(range(len(tracks)))
    for step in range(shape[1]):
        evidence.add(ids, tracks[:, step])
        fused, counts = evidence.fused(ids)
        for t, d in enumerate(open_index.decide_tracks(fused, counts)):
            out["normalised"][t, step], out["raw"][t, step] = d.normalised, d.raw
            out["second"][t, step] = d.second if np.isfinite(d.second) else -np.inf
            out["best"][t, step] = -1 if d.best is None else d.best
    return out


def _named(scores: dict[str, np.ndarray], rule: MatchRule, threshold: float, min_frames: int) -> np.ndarray:
    """``[T, L]``: would the rule name the track's best person at this frame?"""
    steps = np.arange(1, scores["normalised"].shape[1] + 1)[None, :]
    return would_name(scores["normalised"], scores["second"], scores["raw"], threshold, rule.margin,
                      rule.min_cosine) & (steps >= min_frames)


@dataclass
class _Draw:
    """One calibration class: the scores of its genuine and stranger tracks."""

    genuine: dict[str, np.ndarray]
    owners: np.ndarray
    strangers: dict[str, np.ndarray]
    raise_by: float  # how far the gallery raised its photo threshold above the floor


def look_alike_people(enrolled_means: np.ndarray, stranger_means: np.ndarray, count: int) -> np.ndarray:
    """For each enrolled person, the ``count`` strangers closest to them (cosine of mean
    embeddings): indices into ``stranger_means``, ``[enrolled, count]``."""
    from model.core.matching import cosine_matrix

    sims = cosine_matrix(enrolled_means, stranger_means)
    count = min(count, sims.shape[1])
    return np.argsort(-sims, axis=1)[:, :count]


def person_means(embeddings: np.ndarray, names: np.ndarray, people: Sequence[str]) -> np.ndarray:
    """Unit mean embedding of each of ``people``: ``[len(people), d]``."""
    means = np.stack([embeddings[names == p].mean(axis=0) for p in people]).astype(np.float64)
    return means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)


def calibrate_tracks(clean: np.ndarray, frames: np.ndarray, names: np.ndarray, cohort: np.ndarray,
                     rule: MatchRule, *, class_size: int = 30, draws: int = 10,
                     far_target: float = TRACK_FAR, seed: int = 0) -> tuple[MatchRule, dict[str, Any]]:
    """Choose ``track_threshold`` and ``track_min_frames`` on held-out people.

    clean: ``[n, d]`` embeddings of their photos (the gallery is enrolled from these);
    frames: ``[n, J, d]`` live-jittered embeddings of the same photos (``frame_embeddings``).
    Classes of ``class_size`` people with >= 6 photos (5 enrolled, the rest make genuine
    tracks); the strangers are, for each enrolled person, the ``LOOK_ALIKES`` closest
    held-out people outside the class (closest by *this* network: the hardest strangers
    it can meet). For each ``track_min_frames`` the lowest threshold that names at most
    ``far_target`` of stranger tracks; the choice names most students within
    ``QUICK_FRAMES`` frames.
    """
    from model.learning.evaluation import class_draws, enroll_split

    rng = np.random.default_rng(seed)
    people, counts = np.unique(names, return_counts=True)
    eligible = people[counts >= 6].tolist()
    size = min(class_size, len(eligible))
    if size < 2 or size >= len(people):  # no class, or nobody left to play a stranger
        return rule, {"note": "too few held-out people to calibrate live tracks"}
    records: list[_Draw] = []
    for d, chosen in enumerate(class_draws(eligible, size, draws, seed)):
        g, owners, q, q_owner, _ = enroll_split(names, chosen, 5, seed + d)
        index = GalleryIndex.prepare(clean[g], owners, len(chosen), cohort, rule)
        outsiders = [p for p in people.tolist() if p not in set(chosen)]
        near = look_alike_people(person_means(clean[g], names[g], chosen),
                                 person_means(clean, names, outsiders), LOOK_ALIKES)
        stranger_people = sorted({outsiders[j] for j in near.ravel()})
        stranger_sources = [np.flatnonzero(names == p) for p in stranger_people] * TRACKS_EACH
        genuine_sources = [q[q_owner == i] for i in range(len(chosen))] * TRACKS_EACH
        genuine = make_tracks(genuine_sources, frames, TRACK_FRAMES, rng)
        strangers = make_tracks(stranger_sources, frames, TRACK_FRAMES, rng)
        records.append(_Draw(track_scores(index, genuine),
                             np.tile(np.arange(len(chosen)), TRACKS_EACH),
                             track_scores(index, strangers),
                             max(0.0, index.threshold - rule.name_threshold)))
    best: tuple[float, int, float, float, float] | None = None
    for min_frames in MIN_FRAMES_OPTIONS:
        # The highest fused score each stranger track ever reaches (frames >= min_frames),
        # measured from its gallery's own track threshold floor.
        peaks = np.concatenate([
            np.max(np.where(_named(r.strangers, rule, -np.inf, min_frames),
                            r.strangers["normalised"] - r.raise_by, -np.inf), axis=1)
            for r in records])
        allowed = int(np.floor(far_target * len(peaks)))
        threshold = float(np.sort(peaks)[::-1][allowed]) + 1e-6 if allowed < len(peaks) else -np.inf
        threshold = max(threshold, rule.name_threshold)
        quick, ever, wrong = _genuine_rates(records, rule, threshold, min_frames)
        if best is None or quick > best[2] + 1e-9:
            best = (threshold, min_frames, quick, ever, wrong)
    assert best is not None
    threshold, min_frames, quick, ever, wrong = best
    far = _stranger_rate(records, rule, threshold, min_frames)
    chosen_rule = replace(rule, track_threshold=round(threshold, 3), track_min_frames=min_frames)
    return chosen_rule, {
        "class_size": size, "draws": draws, "far_target": far_target,
        "stranger_tracks": int(sum(len(r.strangers["raw"]) for r in records)),
        "genuine_tracks": int(sum(len(r.genuine["raw"]) for r in records)),
        "look_alikes_per_person": LOOK_ALIKES, "frames_per_track": TRACK_FRAMES,
        "strangers_named": round(far, 4), "students_named_within_2s": round(quick, 4),
        "students_named": round(ever, 4), "students_wrong_name": round(wrong, 4),
    }


def _first_named(scores: dict[str, np.ndarray], named: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first frame named or -1, the person named then or -1) per track."""
    any_named = named.any(axis=1)
    step = np.where(any_named, named.argmax(axis=1), -1)
    person = np.where(any_named, scores["best"][np.arange(len(step)), np.maximum(step, 0)], -1)
    return np.where(any_named, step + 1, -1), person


def _genuine_rates(records: list[_Draw], rule: MatchRule, threshold: float,
                   min_frames: int) -> tuple[float, float, float]:
    quick = ever = wrong = total = 0
    for r in records:
        first, person = _first_named(r.genuine, _named(r.genuine, rule, threshold + r.raise_by, min_frames))
        right = person == r.owners
        quick += int(np.sum(right & (first > 0) & (first <= QUICK_FRAMES)))
        ever += int(np.sum(right & (first > 0)))
        wrong += int(np.sum((first > 0) & ~right))
        total += len(first)
    return quick / max(total, 1), ever / max(total, 1), wrong / max(total, 1)


def _stranger_rate(records: list[_Draw], rule: MatchRule, threshold: float, min_frames: int) -> float:
    named = [(_named(r.strangers, rule, threshold + r.raise_by, min_frames)).any(axis=1) for r in records]
    flat = np.concatenate(named)
    return float(flat.mean()) if len(flat) else 0.0


@dataclass(frozen=True)
class TrackFigures:
    """Live-track figures for one gallery and camera."""

    genuine_tracks: int
    genuine_checked_in: float  # share named as themselves, ever (within TRACK_FRAMES frames)
    genuine_within_2s: float  # ... within QUICK_FRAMES frames
    genuine_wrong_name: float  # share checked in as somebody else
    median_frames: float  # frames to check-in, over those checked in as themselves
    stranger_tracks: int
    strangers_checked_in: int
    stranger_rate: float
    stranger_upper_95: float  # one-sided 95% upper bound on the rate (exact binomial)


def track_figures(index: GalleryIndex, genuine: np.ndarray, owners: np.ndarray,
                  strangers: np.ndarray) -> TrackFigures:
    """Run genuine and stranger tracks through the live decision (``run_tracks``)."""
    first, person = run_tracks(index, genuine)
    right = (person == owners) & (first > 0)
    s_first, _ = run_tracks(index, strangers)
    caught = int(np.sum(s_first > 0))
    return TrackFigures(
        genuine_tracks=len(genuine),
        genuine_checked_in=float(right.mean()) if len(right) else 0.0,
        genuine_within_2s=float(np.mean(right & (first <= QUICK_FRAMES))) if len(right) else 0.0,
        genuine_wrong_name=float(np.mean((first > 0) & ~right)) if len(right) else 0.0,
        median_frames=float(np.median(first[right])) if right.any() else float("nan"),
        stranger_tracks=len(strangers),
        strangers_checked_in=caught,
        stranger_rate=caught / max(len(strangers), 1),
        stranger_upper_95=upper_bound_95(caught, len(strangers)),
    )


def upper_bound_95(failures: int, trials: int) -> float:
    """One-sided 95% upper confidence bound of a rate seen ``failures`` times in ``trials``
    (Clopper-Pearson; 0 of n gives about 3/n), by bisection on the binomial tail."""
    if trials == 0:
        return 1.0
    if failures >= trials:
        return 1.0
    from math import exp, lgamma, log

    def tail(p: float) -> float:  # P(X <= failures) for X ~ Binomial(trials, p), in logs
        return sum(exp(lgamma(trials + 1) - lgamma(k + 1) - lgamma(trials - k + 1)
                       + k * log(p) + (trials - k) * log(1 - p)) for k in range(failures + 1))

    lo, hi = failures / trials, 1.0 - 1e-12
    for _ in range(60):
        mid = (lo + hi) / 2
        if tail(mid) > 0.05:
            lo = mid
        else:
            hi = mid
    return hi
