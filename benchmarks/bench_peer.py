"""Ours beside the peer (face_recognition / dlib) and the seed's Koch design, one table.

Run: ``python benchmarks/bench_peer.py [--model PATH] [--koch PATH] [--draws N] [--json]``
(``make bench-peer``). Every row uses exactly the same protocols on LFW DevTest, clean and
under the shifted classroom camera (``model.learning.camera.shifted_camera``):

- pairsDevTest accuracy (at each system's own threshold) and AUC;
- identification 30x5 (mean over random classes) and 93x5: share of enrolled people's
  photos named correctly, and share of strangers' photos given a name.

Rows:
- **ours**: the shipped (or given) model with the app's open-set rule.
- **face_recognition**: what that package does, with the models it ships (dlib's HOG face
  detector with one upsampling, the 5-point landmark model, the ResNet descriptor, called
  through dlib exactly as ``face_recognition.face_encodings`` calls them): a face is the
  enrolled person with the smallest Euclidean distance if it is <= its documented default
  tolerance 0.6 (pairs: distance <= 0.6). Needs the training extras
  (``requirements-train.txt``); skipped with a note otherwise. Its raw descriptors are
  computed once per condition (~130 ms a photo) and cached.
- **face_recognition, oracle threshold**: the distance threshold chosen *on the test
  strangers themselves* for <= 2% (30x5) false accepts: what a perfectly tuned install
  could reach, shown for reference only.
- **koch**: the seed's design, when ``--koch`` names a model trained by
  ``python -m model train --architecture koch`` (our rule, no cohort).

Thresholds are never tuned on the shifted camera (or on DevTest, except the oracle row).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model.core.runtime import import_tensorflow_quietly

TOLERANCE = 0.6  # face_recognition's documented default


def _peer_embeddings(root: Path, shifted: bool) -> Any:
    from model.learning import lfw
    from model.learning.teacher import load_teacher_lfw

    name = f"lfw_peer_devtest_{'shifted' if shifted else 'clean'}_v1.npz"
    return load_teacher_lfw(
        root, people=lfw.people_dev_test(root), cache=lfw.cache_dir() / name, unit=False, shifted=shifted
    )


def _peer_figures(
    emb: np.ndarray,
    names: np.ndarray,
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray],
    draws: int,
    seed: int,
    tolerance: float | None,
) -> dict[str, Any]:
    """face_recognition's rule on the same protocols. ``tolerance=None``: oracle (see above)."""
    from model.learning import evaluation as ev

    a, b, same = pairs
    dist = np.linalg.norm(emb[a] - emb[b], axis=1)
    people, counts = np.unique(names, return_counts=True)
    many = sorted(people[counts >= 6].tolist())

    def run(chosen: list[str], s: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        g, owners, q, q_owner, strangers = ev.enroll_split(names, chosen, 5, s)

        def nearest(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            d = np.linalg.norm(x[:, None, :] - emb[g][None, :, :], axis=2)
            best = d.argmin(axis=1)
            return owners[best], d.min(axis=1)

        who, dq = nearest(emb[q])
        _, ds = nearest(emb[strangers])
        return who == q_owner, dq, ds

    classes = ev.class_draws(many, min(30, len(many)), draws, seed)
    runs30 = [run(c, seed + d) for d, c in enumerate(classes)]
    run93 = run(many, seed)
    if tolerance is None:  # oracle: the loosest threshold with <= 2% strangers named in 30x5
        strangers = np.concatenate([r[2] for r in runs30])
        tolerance = float(np.quantile(strangers, 0.02))

    def figures(r: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[float, float]:
        right, dq, ds = r
        return float(np.mean(right & (dq <= tolerance))), float(np.mean(ds <= tolerance))

    named30, far30 = np.mean([figures(r) for r in runs30], axis=0)
    named93, far93 = figures(run93)
    return {
        "pairs_accuracy": float(np.mean((dist <= tolerance) == same.astype(bool))),
        "pairs_auc": ev.roc_auc(-dist, same),
        "named_30x5": float(named30),
        "strangers_30x5": float(far30),
        "named_93x5": named93,
        "strangers_93x5": far93,
        "threshold": tolerance,
    }


def _ours(recognizer: Any, aligned: Any, root: Path, draws: int, seed: int) -> dict[str, dict[str, Any]]:
    from model.learning import evaluation as ev

    out = {}
    for condition, shifted in (("clean", False), ("shifted", True)):
        emb, names, pairs = ev.devtest_embeddings(recognizer.embed, aligned, root, shifted=shifted)
        f = ev.condition_figures(
            emb, names, pairs, recognizer.cohort, recognizer.rule, draws_30=draws, seed=seed
        )
        out[condition] = {
            "pairs_accuracy": f.pairs_devtest.accuracy,
            "pairs_auc": f.pairs_devtest.auc,
            "named_30x5": f.identification_30x5.named,
            "strangers_30x5": f.identification_30x5.false_accept_rate,
            "named_93x5": f.identification_93x5.named,
            "strangers_93x5": f.identification_93x5.false_accept_rate,
            "threshold": recognizer.rule.name_threshold,
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="our model (default: the active one)")
    parser.add_argument("--koch", type=Path, default=None, help="a Koch model to add as a row")
    parser.add_argument("--draws", type=int, default=10, help="random classes of 30")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import_tensorflow_quietly()
    from model.core.recognizer import load_recognizer
    from model.learning import lfw
    from model.learning.teacher import teacher_available

    root = lfw.lfw_dir()
    if not lfw.lfw_available(root):
        print(f"LFW not found in {root} (set FACEATT_LFW_DIR).")
        return 2
    aligned = lfw.load_aligned_lfw(root)
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    recognizer = load_recognizer(args.model)
    rows[f"ours ({recognizer.architecture})"] = _ours(recognizer, aligned, root, args.draws, args.seed)
    notes = []
    if teacher_available():
        rows["face_recognition (tolerance 0.6)"] = {}
        rows["face_recognition (oracle threshold)"] = {}
        for condition, shifted in (("clean", False), ("shifted", True)):
            peer = _peer_embeddings(root, shifted)
            names = peer.names
            position = {
                (str(n), int(i)): r for r, (n, i) in enumerate(zip(peer.names, peer.indices, strict=True))
            }
            pairs = lfw.pairs_dev_test(root)
            pa = np.array([position[(p.name_a, p.index_a)] for p in pairs])
            pb = np.array([position[(p.name_b, p.index_b)] for p in pairs])
            same = np.array([p.same for p in pairs], dtype=np.int64)
            for label, tol in (
                ("face_recognition (tolerance 0.6)", TOLERANCE),
                ("face_recognition (oracle threshold)", None),
            ):
                rows[label][condition] = _peer_figures(
                    peer.embeddings, names, (pa, pb, same), args.draws, args.seed, tol
                )
    else:
        notes.append(
            "dlib / face-recognition-models not installed (pip install -r requirements-train.txt): "
            "peer rows skipped"
        )
    if args.koch is not None:
        rows["koch (seed design)"] = _ours(load_recognizer(args.koch), aligned, root, args.draws, args.seed)
    else:
        notes.append(
            "no --koch model given: the Koch row is skipped (its recorded figures are in the model card)"
        )

    if args.json:
        print(json.dumps({"rows": rows, "notes": notes}))
        return 0
    header = (
        f"{'system':38s} {'camera':8s} {'pairs acc':>9s} {'AUC':>6s} "
        f"{'30x5 named':>10s} {'strangers':>9s} {'93x5 named':>10s} {'strangers':>9s}"
    )
    print(header)
    print("-" * len(header))
    for system, conditions in rows.items():
        for condition, f in conditions.items():
            print(
                f"{system:38s} {condition:8s} {f['pairs_accuracy']:9.1%} {f['pairs_auc']:6.3f} "
                f"{f['named_30x5']:10.1%} {f['strangers_30x5']:9.1%} "
                f"{f['named_93x5']:10.1%} {f['strangers_93x5']:9.1%}"
            )
    for note in notes:
        print("note:", note)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
