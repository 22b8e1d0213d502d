"""Figures for a school-sized register (issue 18 item 5): bulk import and large galleries.

Run: ``python benchmarks/bench_school.py --import [--people 900]`` and/or ``--identify``.

``--import`` enrolls N LFW people with two photos each through ``FaceAttendance.
import_folders`` (the photos are linked, never copied, into a temporary folder; the
gallery is temporary too) and prints the seconds each hundred people took and the total.
Goal: 900 people in at most 6 minutes on 2 cores, the last hundred no slower than the first.

``--identify`` times the open-set rule alone, on precomputed embeddings (the network's
embedding of the query is not counted): ``GalleryIndex.decide`` for one face at 30 and at
2,000 people (goal: within 2x), and how long one new enrollment into 2,000 people takes
until identification is ready (``GalleryIndex.with_person``, which the facade uses for one
new person, and a full ``prepare``; goal: at most 1 s). Every figure is a median.

One function per figure; each returns a dict and ``main`` prints them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import median_ms

PHOTOS_PER_PERSON = 2
SMALL_CLASS, LARGE_SCHOOL = 30, 2_000


def median_s(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` runs (after warm-up runs)."""
    return median_ms(fn, repeats, warmup) / 1000.0


# ----- bulk import ------------------------------------------------------------------------


def lfw_people(lfw_dir: Path, count: int) -> list[Path]:
    """The first ``count`` LFW people (by name) with at least two photos."""
    found = []
    for person in sorted(p for p in lfw_dir.iterdir() if p.is_dir()):
        if len(list(person.glob("*.jpg"))) >= PHOTOS_PER_PERSON:
            found.append(person)
            if len(found) == count:
                break
    return found


def import_figures(people: int, lfw_dir: Path) -> dict[str, Any]:
    """Import ``people`` LFW people x 2 photos into an empty gallery: seconds per hundred
    people (in import order) and in total."""
    from model.api import FaceAttendance
    from model.settings import get_settings

    chosen = lfw_people(lfw_dir, people)
    with tempfile.TemporaryDirectory(prefix="bench-school-") as tmp:
        root = Path(tmp) / "photos"
        for person in chosen:
            (root / person.name).mkdir(parents=True)
            for photo in sorted(person.glob("*.jpg"))[:PHOTOS_PER_PERSON]:
                (root / person.name / photo.name).symlink_to(photo)
        settings = get_settings()
        settings = replace(settings, data_dir=Path(tmp) / "data", gallery_dir=Path(tmp) / "data" / "gallery")
        engine = FaceAttendance.open(settings)
        engine.warm_up()
        marks: list[float] = []
        start = time.perf_counter()
        report = engine.import_folders(root, consent=True,
                                       progress=lambda done, total, name: marks.append(time.perf_counter()))
        total = time.perf_counter() - start
    marks.append(start + total)
    hundreds = [round(marks[min(i + 100, len(marks) - 1)] - marks[i], 1)
                for i in range(0, len(marks) - 1, 100)]
    return {"people": len(chosen), "enrolled": len(report.enrolled), "photos_used": report.photos_used,
            "seconds_per_hundred": hundreds, "total_s": round(total, 1),
            "last_over_first": round(hundreds[-1] / hundreds[0], 2) if len(hundreds) > 1 else None}


# ----- identification and enrollment in a large gallery ------------------------------------


def _gallery(people: int, rng: np.random.Generator, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit embeddings of ``people`` people, two photos each around their own centre."""
    centres = rng.normal(size=(people, dim))
    noise = 0.8 * rng.normal(size=(people * PHOTOS_PER_PERSON, dim))
    rows = np.repeat(centres, PHOTOS_PER_PERSON, axis=0) + noise
    return rows / np.linalg.norm(rows, axis=1, keepdims=True), np.repeat(np.arange(people), PHOTOS_PER_PERSON)


def identify_figures(recognizer: Any, repeats: int) -> dict[str, Any]:
    """``GalleryIndex.decide`` for one face, at 30 and 2,000 people (median ms, ratio)."""
    from model.core.matching import GalleryIndex

    rng = np.random.default_rng(0)
    dim = recognizer.cohort.shape[1]
    out: dict[str, Any] = {}
    for people in (SMALL_CLASS, LARGE_SCHOOL):
        rows, owners = _gallery(people, rng, dim)
        index = GalleryIndex.prepare(rows, owners, people, recognizer.cohort, recognizer.rule)
        query = rows[:1] + 0.3 * rng.normal(size=(1, dim))
        seconds = median_s(partial(index.decide, query), repeats, warmup=5)
        out[f"decide_ms_{people}"] = round(1e3 * seconds, 3)
    out["ratio"] = round(out[f"decide_ms_{LARGE_SCHOOL}"] / out[f"decide_ms_{SMALL_CLASS}"], 2)
    return out


def enrollment_figures(recognizer: Any, repeats: int) -> dict[str, Any]:
    """From one new enrollment into 2,000 people until identification is ready: the index
    grown by the new person (what ``FaceAttendance.gallery_index`` does after one enrollment)
    and a full ``prepare`` of all 2,000 (after a removal or a new model), median seconds."""
    from model.core.matching import GalleryIndex

    rng = np.random.default_rng(1)
    rows, owners = _gallery(LARGE_SCHOOL, rng, recognizer.cohort.shape[1])
    new = owners == LARGE_SCHOOL // 2
    before = np.where(owners[~new] > LARGE_SCHOOL // 2, owners[~new] - 1, owners[~new])
    index = GalleryIndex.prepare(rows[~new], before, LARGE_SCHOOL - 1, recognizer.cohort, recognizer.rule)
    grown = median_s(lambda: index.with_person(rows[new], LARGE_SCHOOL // 2), repeats)
    fresh = median_s(lambda: GalleryIndex.prepare(rows, owners, LARGE_SCHOOL, recognizer.cohort,
                                                  recognizer.rule), max(3, repeats // 5))
    return {"people": LARGE_SCHOOL, "one_more_person_s": round(grown, 3), "full_prepare_s": round(fresh, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--import", dest="bulk", action="store_true", help="time a bulk import of LFW people")
    parser.add_argument("--people", type=int, default=900, help="people to import (default 900)")
    parser.add_argument("--identify", action="store_true",
                        help="time identification at 30 and 2,000 people and one new enrollment")
    parser.add_argument("--repeats", type=int, default=200, help="runs per identification figure")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if not (args.bulk or args.identify):
        parser.error("choose --import and/or --identify")
    from model.core.runtime import import_tensorflow_quietly

    import_tensorflow_quietly()
    from model.settings import get_settings

    figures: dict[str, Any] = {}
    if args.identify:
        from model.core.recognizer import load_recognizer

        recognizer = load_recognizer(None, get_settings())
        figures["identify"] = identify_figures(recognizer, args.repeats)
        figures["enrollment"] = enrollment_figures(recognizer, max(5, args.repeats // 10))
    if args.bulk:
        figures["import"] = import_figures(args.people, get_settings().lfw_dir)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for part, values in figures.items():
            print(f"{part}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
