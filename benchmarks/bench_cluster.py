"""Enrolling a class from group photos: how well are the faces grouped by person? (issue 19)

Run: ``python benchmarks/bench_cluster.py [--classes N] [--json]`` (``make bench-cluster``;
needs LFW). ``--calibrate`` picks the grouping thresholds instead, on held-out LFW DevTrain
people (the ones the network never trained on, ``distill.calibration_people``); the figures
are always on DevTest people, never tuned on.

Each class is synthetic: 20-30 different people, 3-6 photos, each photo a grid of the class's
faces in a shuffled order (each person at most once a photo, absent from a photo one time in
ten, never from all but one), each appearance a different LFW photo of them, every face
jittered (position, size, a small tilt) with its own light (gain and gamma). In the shifted
condition every other photo of a class goes through the shifted classroom camera
(``camera.shifted_camera``): the same class seen by a good and a poor camera. Each photo
goes through the app's own path (``FaceAttendance.assess_faces``: detection, alignment,
the quality gates; then the network), so faces the gates refuse are counted, not grouped.

Printed per condition: BCubed and pairwise precision, recall and F (a face left "not sure"
counts as a group of its own), groups against people, faces left not sure, same-photo
merges (pairs of faces of one photo in one group), beside plain scikit-learn
agglomerative (average link, cosine) and DBSCAN on the same embeddings, their thresholds
picked on DevTrain the same way; and the time to group 4 photos of 25 faces.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SEED = 0
#: LFW photos are 250 x 250 with the face in the middle; the centre this wide is cut out
#: (it drops most people in the background, who would be faces of nobody in the class).
TILE_SOURCE = 150
#: Side (px) a face's tile is drawn at, before its random scale, and the gap between tiles.
TILE = 140
GAP = 16
#: One time in ten a person is missing from one photo (at the back, or away that day).
ABSENT = 0.1
THRESHOLDS = np.round(np.arange(-6.0, 2.01, 0.5), 2)
#: Calibration keeps the highest threshold whose mean BCubed F is this close to the best.
F_SLACK = 0.005
SINGLE_THRESHOLDS = (-3.0, -2.0, -1.5, -1.0, -0.5, 0.0)
AGGLOMERATIVE_DISTANCES = np.round(np.arange(0.30, 0.95, 0.05), 2)
DBSCAN_EPS = np.round(np.arange(0.20, 0.80, 0.05), 2)


@dataclass(frozen=True)
class ClassPhotos:
    """One synthetic class: its photos (RGB uint8), and per photo the tile of each person
    ``(person, x, y, w, h)``."""

    photos: list[np.ndarray]
    tiles: list[list[tuple[int, int, int, int, int]]]
    people: list[str]


@dataclass(frozen=True)
class ClassFaces:
    """A class after the app's face finding: usable faces' embeddings, photo and true person
    (-1: a face in no tile), and counts of what was lost."""

    embeddings: np.ndarray
    photos: np.ndarray
    truth: np.ndarray
    appearances: int
    refused: int
    missed: int
    #: Faces the quality gates refused, with the same fields (what grouping every detected
    #: face would have to cope with).
    gated: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def with_gated(self) -> ClassFaces:
        """Every detected face, the refused ones too (the gates switched off)."""
        if self.gated is None or len(self.gated[0]) == 0:
            return self
        e, p, t = self.gated
        return ClassFaces(np.r_[self.embeddings, e], np.r_[self.photos, p], np.r_[self.truth, t],
                          self.appearances, 0, self.missed)


def lfw_tile(root: Path, name: str, index: int) -> np.ndarray:
    from model.learning import lfw

    read = cv2.imread(str(lfw.image_path(root, name, index)))
    if read is None:
        raise SystemExit(f"cannot read LFW photo {name} {index}")
    image = cv2.cvtColor(read, cv2.COLOR_BGR2RGB)
    h, w = image.shape[:2]
    top, left = (h - TILE_SOURCE) // 2, (w - TILE_SOURCE) // 2
    return image[top:top + TILE_SOURCE, left:left + TILE_SOURCE]


def make_class(root: Path, people: Sequence[tuple[str, int]], photos: int, rng: np.random.Generator,
               shifted: bool) -> ClassPhotos:
    """A class of ``people`` ((name, LFW photos)) in ``photos`` group photos."""
    from model.learning.camera import LFW_PHOTO_SCALE, shifted_camera

    present = rng.random((len(people), photos)) >= ABSENT
    present[present.sum(axis=1) < 2] = True
    picks = [rng.choice(count, photos, replace=False) + 1 for _, count in people]
    columns = int(np.ceil(np.sqrt(len(people))))
    out, tiles = [], []
    for p in range(photos):
        who = [i for i in rng.permutation(len(people)) if present[i, p]]
        rows = int(np.ceil(len(who) / columns))
        cell = TILE + GAP
        canvas = np.full((rows * cell + GAP, columns * cell + GAP, 3), 0, np.float32)
        canvas += rng.uniform(60, 180, 3).astype(np.float32)  # the wall behind the class
        canvas += rng.normal(0, 6, canvas.shape[:2])[..., None].astype(np.float32)
        placed = []
        for k, i in enumerate(who):
            name, _ = people[i]
            side = int(TILE * rng.uniform(0.8, 1.0))
            tile = cv2.resize(lfw_tile(root, name, int(picks[i][p])), (side, side),
                              interpolation=cv2.INTER_AREA).astype(np.float32)
            turn = cv2.getRotationMatrix2D((side / 2, side / 2), rng.uniform(-8, 8), 1.0)
            tile = np.asarray(cv2.warpAffine(tile, turn, (side, side), borderMode=cv2.BORDER_REFLECT),
                              np.float32)
            gain, gamma = rng.uniform(0.6, 1.3), rng.uniform(0.8, 1.25)
            tile = 255.0 * np.power(np.clip(tile * gain / 255.0, 0, 1), gamma)
            x = GAP + (k % columns) * cell + int(rng.integers(0, TILE - side + 1))
            y = GAP + (k // columns) * cell + int(rng.integers(0, TILE - side + 1))
            canvas[y:y + side, x:x + side] = tile
            placed.append((i, x, y, side, side))
        photo = np.clip(canvas, 0, 255).astype(np.uint8)
        if shifted and p % 2 == 1:
            photo = shifted_camera(photo, seed=int(rng.integers(1 << 30)),
                                   scale=LFW_PHOTO_SCALE * TILE_SOURCE / (0.9 * TILE))
        out.append(photo)
        tiles.append(placed)
    return ClassPhotos(out, tiles, [name for name, _ in people])


def find_faces(engine: Any, school: ClassPhotos) -> ClassFaces:
    """The app's path on each photo: faces, quality gates, crops; one network call."""
    crops, photo_of, truth, ok = [], [], [], []
    appearances = missed = 0
    for p, (photo, tiles) in enumerate(zip(school.photos, school.tiles, strict=True)):
        appearances += len(tiles)
        seen = set()
        for assessment in engine.assess_faces(photo):
            x, y, w, h = assessment.face.box
            cx, cy = x + w / 2, y + h / 2
            owner = next((i for i, tx, ty, tw, th in tiles
                          if tx <= cx < tx + tw and ty <= cy < ty + th), -1)
            seen.add(owner)
            crops.append(assessment.crop)
            photo_of.append(p)
            truth.append(owner)
            ok.append(assessment.ok)
        missed += sum(1 for i, *_ in tiles if i not in seen)
    embeddings = np.asarray(engine.recognizer.embed(crops), np.float64)
    photos, owners, good = np.array(photo_of, np.int64), np.array(truth, np.int64), np.array(ok, bool)
    return ClassFaces(embeddings[good], photos[good], owners[good], appearances,
                      int(((~good) & (owners >= 0)).sum()), missed,
                      gated=(embeddings[~good], photos[~good], owners[~good]))


# ------------------------------------------------------------------- the figures


def _as_partition(labels: np.ndarray) -> np.ndarray:
    """Labels with every -1 (not sure / noise) made a group of its own."""
    out = labels.copy()
    loose = np.flatnonzero(out < 0)
    out[loose] = out.max(initial=-1) + 1 + np.arange(len(loose))
    return out


def cluster_figures(predicted: np.ndarray, truth: np.ndarray, photos: np.ndarray) -> dict[str, float]:
    """BCubed and pairwise precision/recall/F, groups, people, not sure, same-photo merges.
    Faces in no tile (truth -1) are each a person of their own."""
    pred = _as_partition(predicted)
    real = _as_partition(truth)
    same_pred = pred[:, None] == pred[None, :]
    same_real = real[:, None] == real[None, :]
    both = (same_pred & same_real).sum(axis=1)
    b_precision = float(np.mean(both / same_pred.sum(axis=1))) if len(pred) else 1.0
    b_recall = float(np.mean(both / same_real.sum(axis=1))) if len(pred) else 1.0
    upper = np.triu(np.ones_like(same_pred), 1)
    tp = float((same_pred & same_real & upper).sum())
    p_precision = tp / max(float((same_pred & upper).sum()), 1.0)
    p_recall = tp / max(float((same_real & upper).sum()), 1.0)
    same_photo = photos[:, None] == photos[None, :]
    grouped = predicted >= 0
    groups = len({int(g) for g in predicted[grouped]})
    return {
        "bcubed_precision": b_precision, "bcubed_recall": b_recall,
        "bcubed_f": _f(b_precision, b_recall),
        "pair_precision": p_precision, "pair_recall": p_recall, "pair_f": _f(p_precision, p_recall),
        "groups": groups, "people": len({int(t) for t in truth[truth >= 0]}),
        "unsure": float(np.mean(~grouped)) if len(pred) else 0.0,
        "same_photo_merges": int((same_pred & same_photo & upper & grouped[:, None]).sum()),
    }


def _f(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def ours(faces: ClassFaces, recognizer: Any, threshold: float, single: float) -> np.ndarray:
    from model.school.grouping import face_scores, group_faces

    scores = face_scores(faces.embeddings, faces.photos, recognizer.cohort, recognizer.rule)
    return group_faces(scores, faces.photos, threshold=threshold, single_threshold=single).labels()


def agglomerative(faces: ClassFaces, distance: float) -> np.ndarray:
    from sklearn.cluster import AgglomerativeClustering

    if len(faces.embeddings) < 2:
        return np.zeros(len(faces.embeddings), np.int64)
    model = AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="average",
                                    distance_threshold=distance)
    return np.asarray(model.fit_predict(faces.embeddings), np.int64)


def dbscan(faces: ClassFaces, eps: float) -> np.ndarray:
    from sklearn.cluster import DBSCAN

    return np.asarray(DBSCAN(eps=eps, min_samples=2, metric="cosine").fit_predict(faces.embeddings),
                      np.int64)


def pooled(figures: list[dict[str, float]]) -> dict[str, float]:
    """Means over classes; counts summed; groups against people as a ratio."""
    out = {k: round(float(np.mean([f[k] for f in figures])), 4) for k in figures[0]}
    out["groups"] = int(sum(f["groups"] for f in figures))
    out["people"] = int(sum(f["people"] for f in figures))
    out["same_photo_merges"] = int(sum(f["same_photo_merges"] for f in figures))
    out["groups_per_person"] = round(out["groups"] / max(out["people"], 1), 3)
    out["worst_groups_per_person"] = round(max(abs(f["groups"] / max(f["people"], 1) - 1)
                                               for f in figures), 3)
    return out


def best_setting(classes: list[ClassFaces], grouped: Callable[[ClassFaces, Any], np.ndarray],
                 options: Sequence[Any]) -> tuple[Any, float]:
    """(the option with the highest mean BCubed F over ``classes``, that F)."""
    scored = []
    for option in options:
        fs = [cluster_figures(grouped(c, option), c.truth, c.photos)["bcubed_f"] for c in classes]
        scored.append((float(np.mean(fs)), option))
    f, option = max(scored, key=lambda t: t[0])
    return option, f


# ------------------------------------------------------------------- the runs


def open_engine(tmp: Path) -> Any:
    from model.api import FaceAttendance
    from model.settings import get_settings

    settings = replace(get_settings(), data_dir=tmp, gallery_dir=tmp / "gallery")
    engine = FaceAttendance.open(settings)
    engine.warm_up()
    return engine


def draw_classes(root: Path, people: list[tuple[str, int]], count: int, shifted: bool,
                 seed: int, engine: Any, report: Callable[[str], None]) -> list[ClassFaces]:
    rng = np.random.default_rng(seed)
    out = []
    for c in range(count):
        photos = int(rng.integers(3, 7))
        size = int(rng.integers(20, 31))
        eligible = [p for p in people if p[1] >= photos]
        chosen = [eligible[i] for i in sorted(rng.choice(len(eligible), size, replace=False))]
        school = make_class(root, chosen, photos, rng, shifted)
        out.append(find_faces(engine, school))
        report(f"class {c + 1}/{count}: {size} people, {photos} photos, "
               f"{len(out[-1].truth)} usable faces")
    return out


def calibrate(root: Path, engine: Any, classes: int, report: Callable[[str], None]) -> dict[str, Any]:
    """The thresholds (ours and the baselines') with the best mean BCubed F on clean classes
    of held-out DevTrain people."""
    from model.learning import lfw
    from model.learning.distill import calibration_people

    train = lfw.people_dev_train(root)
    held = calibration_people(train, SEED)
    people = sorted(p for p in train if p[0] in held and p[1] >= 3)
    found = draw_classes(root, people, classes, False, SEED + 100, engine, report)
    recognizer = engine.recognizer
    curve = {}
    for t in THRESHOLDS.tolist():
        _, curve[t] = best_setting(found, lambda c, o: ours(c, recognizer, *o), [(t, -1.5)])
    # The F curve is flat over a wide range: the cannot-link does much of the work. Of the
    # thresholds within F_SLACK of the best, the highest (the fewest wrong merges: a face
    # enrolled under another student's name is worse than a split the teacher merges).
    top = max(curve.values())
    threshold = max(t for t, f in curve.items() if f >= top - F_SLACK)
    single, f = best_setting(found, lambda c, o: ours(c, recognizer, threshold, o),
                             list(SINGLE_THRESHOLDS))
    distance, f_agg = best_setting(found, agglomerative, AGGLOMERATIVE_DISTANCES.tolist())
    eps, f_db = best_setting(found, dbscan, DBSCAN_EPS.tolist())
    return {"group_threshold": float(threshold), "group_single_threshold": float(single),
            "bcubed_f": round(f, 4), "bcubed_f_by_threshold": {str(k): round(v, 4) for k, v in curve.items()},
            "agglomerative_distance": float(distance),
            "agglomerative_bcubed_f": round(f_agg, 4), "dbscan_eps": float(eps),
            "dbscan_bcubed_f": round(f_db, 4), "classes": classes,
            "people": "held-out LFW DevTrain (never trained on), >= 3 photos"}


#: The baselines' thresholds, picked by ``--calibrate`` on the same DevTrain classes (best
#: BCubed F there: agglomerative 0.875 at cosine distance 0.6, DBSCAN 0.830 at eps 0.45;
#: ours 0.969 at -3.5).
AGGLOMERATIVE_DISTANCE = 0.6
DBSCAN_EPS_CHOSEN = 0.45


def benchmark(root: Path, engine: Any, classes: int, report: Callable[[str], None]) -> dict[str, Any]:
    from model.learning import lfw

    recognizer = engine.recognizer
    settings = engine.settings
    people = sorted(p for p in lfw.people_dev_test(root) if p[1] >= 3)
    out: dict[str, Any] = {"model": recognizer.label, "classes": classes,
                           "group_threshold": settings.group_threshold,
                           "group_single_threshold": settings.group_single_threshold}
    for condition, shifted in (("clean", False), ("shifted", True)):
        found = draw_classes(root, people, classes, shifted, SEED, engine, report)
        out[condition] = {
            "faces": {"appearances": sum(c.appearances for c in found),
                      "usable": sum(len(c.truth) for c in found),
                      "refused_by_quality_gates": sum(c.refused for c in found),
                      "not_found": sum(c.missed for c in found),
                      "in_no_tile": int(sum((c.truth < 0).sum() for c in found))},
            "ours": pooled([cluster_figures(ours(c, recognizer, settings.group_threshold,
                                                 settings.group_single_threshold), c.truth, c.photos)
                            for c in found]),
            "agglomerative": pooled([cluster_figures(agglomerative(c, AGGLOMERATIVE_DISTANCE),
                                                     c.truth, c.photos) for c in found]),
            "dbscan": pooled([cluster_figures(dbscan(c, DBSCAN_EPS_CHOSEN), c.truth, c.photos)
                              for c in found]),
            # The refused faces grouped too: the rule itself on the poor camera's faces.
            "ours_gates_off": pooled([
                cluster_figures(ours(c, recognizer, settings.group_threshold,
                                     settings.group_single_threshold), c.truth, c.photos)
                for c in (f.with_gated() for f in found)]),
        }
    out["seconds_4_photos_25_faces"] = time_grouping(root, engine, people)
    return out


def time_grouping(root: Path, engine: Any, people: list[tuple[str, int]]) -> float:
    """Seconds ``group_photos`` takes for 4 photos of the same 25 people (median of 3)."""
    from model.group_enroll import group_photos

    rng = np.random.default_rng(SEED + 7)
    eligible = [p for p in people if p[1] >= 4]
    chosen = [eligible[i] for i in sorted(rng.choice(len(eligible), 25, replace=False))]
    photos = make_class(root, chosen, 4, rng, False).photos
    times = []
    for _ in range(3):
        started = time.perf_counter()
        group_photos(engine, photos)
        times.append(time.perf_counter() - started)
    return round(float(np.median(times)), 2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=10, help="classes per condition")
    parser.add_argument("--calibrate", action="store_true",
                        help="pick the thresholds on held-out DevTrain people instead")
    parser.add_argument("--lfw", type=Path, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from model.core.runtime import import_tensorflow_quietly
    from model.learning import lfw

    root = args.lfw or lfw.lfw_dir()
    if not lfw.lfw_available(root):
        print(f"LFW not found in {root} (set FACEATT_LFW_DIR)", file=sys.stderr)
        return 2
    import_tensorflow_quietly()

    def report(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        engine = open_engine(Path(tmp))
        result = (calibrate(root, engine, args.classes, report) if args.calibrate
                  else benchmark(root, engine, args.classes, report))
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
