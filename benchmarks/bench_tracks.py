"""Look-alike strangers at the live kiosk, the worst case (issue 15).

Run: ``python benchmarks/bench_tracks.py [--model PATH] [--draws N] [--json]``
(``make bench-tracks``; needs LFW, and the training extras the first time, to pick the
look-alikes with the teacher; ~10 min on 2 cores, the teacher's DevTest embeddings are
cached after the first run).

For every enrolled LFW DevTest person the never-enrolled DevTest people closest to them
*by the teacher* (dlib's ResNet, which our network never decides with) play the strangers:
the people a class would really confuse. Tracks are built as the live page sees a face
(``model.learning.tracks``): up to three photos of one person, each frame a live-camera
jitter at a random strength, and under the shifted classroom camera (gallery included)
for the hard condition. They run through the live page's own decision
(``TrackEvidence`` -> ``GalleryIndex.decide_tracks``, the first named frame is the
check-in) with the shipped rule, whose thresholds were chosen on held-out DevTrain people:
nothing here is tuned.

- class of 30: ``--draws`` classes of 30 among the 93 DevTest people with >= 6 photos,
  5 photos enrolled, the rest make the genuine tracks; 3 look-alikes per student.
- gallery of 900: those 93 (5 photos each) and 807 other DevTest people (1 photo each);
  genuine tracks from everyone with a photo left; the closest never-enrolled person of
  each enrolled one is a stranger.

Stranger tracks last ``TRACK_FRAMES`` frames (a minute at the kiosk); each stranger and
student gets two tracks from different draws of photos and jitter.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model.core.runtime import import_tensorflow_quietly

TEACHER_CACHE = "lfw_teacher_dlib_v1_devtest.npz"
GALLERY_SIZE = 900
SEED = 0


def teacher_devtest(root: Path, names: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """The teacher's unit embeddings of the DevTest photos (rows as ``names``/``indices``)."""
    from model.learning import lfw
    from model.learning.teacher import load_teacher_lfw, teacher_available

    path = lfw.cache_dir() / TEACHER_CACHE
    if not path.is_file() and not teacher_available():
        raise SystemExit("the teacher picks the look-alikes: install the training extras "
                         "(make install-train) once")
    teacher = load_teacher_lfw(root, people=lfw.people_dev_test(root), cache=path,
                               progress=lambda done, total, m: print(m, file=sys.stderr)
                               if done % 1024 < 64 else None)
    return teacher.lookup(names, indices).astype(np.float64)


def stranger_sources(teacher: np.ndarray, names: np.ndarray, enrolled: list[str], per_person: int,
                     gallery_rows: np.ndarray) -> tuple[list[np.ndarray], list[str]]:
    """Photo rows of the look-alikes (by the teacher) of the enrolled people, one list per
    stranger, and their names."""
    from model.learning.tracks import look_alike_people, person_means

    taken = set(enrolled)
    outsiders = sorted({str(n) for n in names} - taken)
    near = look_alike_people(person_means(teacher[gallery_rows], names[gallery_rows], enrolled),
                             person_means(teacher, names, outsiders), per_person)
    chosen = sorted({outsiders[j] for j in near.ravel()})
    return [np.flatnonzero(names == p) for p in chosen], chosen


def condition(recognizer: Any, crops: np.ndarray, names: np.ndarray, teacher: np.ndarray,
              shifted: bool, draws: int) -> dict[str, Any]:
    from model.core.matching import GalleryIndex
    from model.learning.camera import shifted_camera
    from model.learning.evaluation import class_draws, enroll_split
    from model.learning.tracks import (
        LOOK_ALIKES,
        TRACK_FRAMES,
        TRACKS_EACH,
        frame_embeddings,
        make_tracks,
        track_figures,
    )

    rng = np.random.default_rng(SEED)
    started = time.monotonic()
    photos = np.stack([shifted_camera(c, seed=i) for i, c in enumerate(crops)]) if shifted else crops
    clean = np.asarray(recognizer.embed(photos), np.float64)
    frames = frame_embeddings(recognizer.embed, crops, shifted=shifted, seed=SEED + int(shifted))
    out: dict[str, Any] = {"embed_seconds": round(time.monotonic() - started, 1)}
    people, counts = np.unique(names, return_counts=True)
    many = sorted(people[counts >= 6].tolist())

    results = []
    for d, chosen in enumerate(class_draws(many, 30, draws, SEED)):
        g, owners, q, q_owner, _ = enroll_split(names, chosen, 5, SEED + d)
        index = GalleryIndex.prepare(clean[g], owners, len(chosen), recognizer.cohort, recognizer.rule)
        sources, _ = stranger_sources(teacher, names, chosen, LOOK_ALIKES, g)
        genuine = make_tracks([q[q_owner == i] for i in range(len(chosen))] * TRACKS_EACH, frames,
                              TRACK_FRAMES, rng)
        strangers = make_tracks(sources * TRACKS_EACH, frames, TRACK_FRAMES, rng)
        results.append(track_figures(index, genuine, np.tile(np.arange(len(chosen)), TRACKS_EACH),
                                     strangers))
    out["class_30"] = pooled(results)

    others = sorted(set(people.tolist()) - set(many))
    fill = sorted(rng.choice(others, GALLERY_SIZE - len(many), replace=False).tolist())
    enrolled = many + fill
    g, owners, q, q_owner, _ = enroll_split(names, many, 5, SEED)
    extra = [np.flatnonzero(names == p) for p in fill]
    g = np.r_[g, [rows[0] for rows in extra]]
    owners = np.r_[owners, np.arange(len(many), len(enrolled))]
    q_lists = [q[q_owner == i] for i in range(len(many))] + [rows[1:] for rows in extra]
    with_photos = [i for i, rows in enumerate(q_lists) if len(rows)]
    index = GalleryIndex.prepare(clean[g], owners, len(enrolled), recognizer.cohort, recognizer.rule)
    sources, _ = stranger_sources(teacher, names, enrolled, 1, g)
    genuine = make_tracks([q_lists[i] for i in with_photos] * TRACKS_EACH, frames, TRACK_FRAMES, rng)
    strangers = make_tracks(sources * TRACKS_EACH, frames, TRACK_FRAMES, rng)
    out["gallery_900"] = asdict(track_figures(index, genuine, np.tile(with_photos, TRACKS_EACH),
                                              strangers))
    out["gallery_900"]["track_threshold"] = index.track_threshold
    out["seconds"] = round(time.monotonic() - started, 1)
    return out


def pooled(results: list[Any]) -> dict[str, Any]:
    """Several classes' track figures as one (counts added, rates over all tracks)."""
    from model.learning.tracks import upper_bound_95

    genuine = sum(r.genuine_tracks for r in results)
    strangers = sum(r.stranger_tracks for r in results)
    caught = sum(r.strangers_checked_in for r in results)

    def mean(key: str) -> float:
        return float(sum(getattr(r, key) * r.genuine_tracks for r in results) / max(genuine, 1))

    return {"classes": len(results), "genuine_tracks": genuine,
            "genuine_checked_in": mean("genuine_checked_in"),
            "genuine_within_2s": mean("genuine_within_2s"),
            "genuine_wrong_name": mean("genuine_wrong_name"),
            "median_frames": float(np.median([r.median_frames for r in results])),
            "stranger_tracks": strangers, "strangers_checked_in": caught,
            "stranger_rate": caught / max(strangers, 1),
            "stranger_upper_95": upper_bound_95(caught, strangers)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from model.core.recognizer import load_recognizer
    from model.learning import lfw
    from model.settings import get_settings

    root = lfw.lfw_dir()
    if not lfw.lfw_available(root):
        raise SystemExit(f"LFW not found at {root}; set FACEATT_LFW_DIR")
    recognizer = load_recognizer(args.model or get_settings().base_model_path)
    aligned = lfw.load_aligned_lfw(root)
    rows = aligned.rows(name for name, _ in lfw.people_dev_test(root))
    names, crops = aligned.names[rows], aligned.crops[rows]
    teacher = teacher_devtest(root, names, aligned.indices[rows])
    rule = recognizer.rule
    figures: dict[str, Any] = {"model": str(recognizer.path), "track_threshold": rule.track_threshold,
                               "track_min_frames": rule.track_min_frames}
    for label, shifted in (("clean", False), ("shifted", True)):
        print(f"{label}: embedding and running tracks", file=sys.stderr, flush=True)
        figures[label] = condition(recognizer, crops, names, teacher, shifted, args.draws)
    return figures


def report(f: dict[str, Any]) -> None:
    print(f"model {f['model']}: a track is named at fused score >= {f['track_threshold']:.2f} "
          f"(raised with the gallery's own threshold) after >= {f['track_min_frames']} frames")
    print(f"{'camera':<9}{'gallery':<13}{'stranger tracks in':>20}{'95% bound':>11}"
          f"{'students in':>13}{'within 2 s':>12}{'wrong name':>12}{'median frames':>15}")
    for camera in ("clean", "shifted"):
        for key, label in (("class_30", "class of 30"), ("gallery_900", "900 people")):
            r = f[camera][key]
            print(f"{camera:<9}{label:<13}"
                  f"{r['strangers_checked_in']:>9} of {r['stranger_tracks']:<5} {r['stranger_rate']:>5.1%}"
                  f"{r['stranger_upper_95']:>10.1%}{r['genuine_checked_in']:>13.1%}"
                  f"{r['genuine_within_2s']:>12.1%}{r['genuine_wrong_name']:>12.1%}"
                  f"{r['median_frames']:>15.0f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", type=Path, help="a saved model (default: the shipped one)")
    parser.add_argument("--draws", type=int, default=10, help="classes of 30 drawn")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    import_tensorflow_quietly()
    figures = run(args)
    if args.json:
        print(json.dumps(figures, indent=2, default=str))
    else:
        report(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
