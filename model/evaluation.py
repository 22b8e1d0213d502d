"""An honest evaluation on LFW people never seen in training (View 1 DevTest).

- Verification on ``pairsDevTest.txt`` (500 same + 500 different pairs): accuracy at
  the threshold chosen on ``pairsDevTrain.txt`` (never re-tuned on the test pairs),
  ROC AUC, and the true-accept rate at false-accept rates of 1% and 0.1%.
- Identification, the way the app works: enroll 5 photos per person, score every
  query against every enrolled photo, a person's score is the mean of their best
  ``top_k`` (2) photo scores, and a query is "unknown" below the threshold.
  ``93x5``: the 93 peopleDevTest people with at least 6 photos, queried with their
  remaining photos (rank-1 = the best person is right *and* above the threshold),
  and every photo of the other DevTest people as impostors (false-accept rate = share
  of impostor photos given a name). ``30x5``: the same with 30 of the 93, the size of
  a class, averaged over a few random draws (impostors: the other DevTest people).

Metrics are numpy implementations (no scikit-learn).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

# ------------------------------------------------------------------- metrics


def roc_curve(scores: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false-accept rates, true-accept rates, thresholds), thresholds descending.

    A pair is accepted when its score is >= the threshold. Starts at (0, 0).
    """
    scores = np.asarray(scores, dtype=np.float64)
    same = np.asarray(same).astype(bool)
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], same[order]
    # Keep the last index of each run of equal scores (ties move together).
    distinct = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp = np.cumsum(y)[distinct]
    fp = np.cumsum(~y)[distinct]
    positives, negatives = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    tar = np.r_[0.0, tp / positives]
    far = np.r_[0.0, fp / negatives]
    thresholds = np.r_[np.inf, s[distinct]]
    return far, tar, thresholds


def roc_auc(scores: np.ndarray, same: np.ndarray) -> float:
    """Area under the ROC curve (trapezoids): 0.5 is chance, 1.0 perfect."""
    far, tar, _ = roc_curve(scores, same)
    return float(np.sum(np.diff(far) * (tar[1:] + tar[:-1]) / 2.0))


def tar_at_far(scores: np.ndarray, same: np.ndarray, far_target: float) -> float:
    """Best true-accept rate whose false-accept rate is at most ``far_target``.

    With 500 different-person pairs, FAR = 1e-3 allows no false accept at all
    (0/500), so that figure is the share of same-person pairs scored above every
    different-person pair.
    """
    far, tar, _ = roc_curve(scores, same)
    ok = far <= far_target + 1e-12
    return float(tar[ok].max()) if ok.any() else 0.0


def accuracy_at(scores: np.ndarray, same: np.ndarray, threshold: float) -> float:
    """Share of pairs decided right when "same" means score >= threshold."""
    same = np.asarray(same).astype(bool)
    return float(np.mean((np.asarray(scores) >= threshold) == same)) if len(same) else 0.0


def best_threshold(scores: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """(threshold, accuracy) maximising accuracy; the threshold sits midway between
    the two scores it separates, so it generalises rather than touching a sample."""
    s = np.sort(np.unique(np.asarray(scores, dtype=np.float64)))
    if len(s) == 0:
        return 0.5, 0.0
    candidates = np.r_[s[0] - 1e-6, (s[1:] + s[:-1]) / 2.0, s[-1] + 1e-6]
    same = np.asarray(same).astype(bool)
    accs = np.array([np.mean((scores >= t) == same) for t in candidates])
    best = int(np.argmax(accs))
    return float(candidates[best]), float(accs[best])


# ----------------------------------------------------------- identification

ScoreFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class IdentificationResult:
    """rank1: share of genuine queries whose best person is right and at/above threshold.
    false_accept_rate: share of impostor queries given a name. ``draws`` > 1 = averages."""

    people: int
    enrolled_per_person: int
    queries: int
    impostors: int
    rank1: float
    rank1_ignoring_threshold: float
    false_accept_rate: float
    draws: int = 1


def person_scores(score: ScoreFn, queries: np.ndarray, gallery: np.ndarray,
                  owners: np.ndarray, n_people: int, top_k: int = 2) -> np.ndarray:
    """[m, n_people] scores: per person, the mean of their ``top_k`` best photo scores.

    ``owners[j]`` is the person index (0..n_people-1) of gallery row ``j``. Uses the
    app's own aggregation (``model.api.aggregate_by_person``) so the benchmark measures
    what the app does.
    """
    from model.api import aggregate_by_person

    photo = np.asarray(score(queries, gallery), dtype=np.float32)
    return aggregate_by_person(photo, np.asarray(owners, dtype=np.int64), n_people, top_k)


def identify(score: ScoreFn, threshold: float, gallery: np.ndarray, owners: np.ndarray,
             genuine: np.ndarray, genuine_owner: np.ndarray, impostors: np.ndarray,
             top_k: int = 2) -> IdentificationResult:
    """Identification figures from embeddings (see the module docstring)."""
    n_people = int(owners.max()) + 1
    g = person_scores(score, genuine, gallery, owners, n_people, top_k)
    best, best_score = g.argmax(axis=1), g.max(axis=1)
    right = best == genuine_owner
    i = person_scores(score, impostors, gallery, owners, n_people, top_k) if len(impostors) \
        else np.zeros((0, n_people))
    far = float(np.mean(i.max(axis=1) >= threshold)) if len(i) else 0.0
    return IdentificationResult(
        people=n_people, enrolled_per_person=int(np.bincount(owners).min()),
        queries=len(genuine), impostors=len(impostors),
        rank1=float(np.mean(right & (best_score >= threshold))),
        rank1_ignoring_threshold=float(np.mean(right)), false_accept_rate=far)


def identification_benchmark(embeddings: np.ndarray, names: np.ndarray, score: ScoreFn,
                             threshold: float, *, people: list[str], enroll: int = 5,
                             seed: int = 0, top_k: int = 2) -> IdentificationResult:
    """Enroll ``enroll`` random photos of each of ``people``; query with their other photos;
    every photo (row of ``embeddings``) of anyone else is an impostor query."""
    rng = np.random.default_rng(seed)
    gallery_rows, owners, query_rows, query_owner = [], [], [], []
    for p, name in enumerate(people):
        rows = rng.permutation(np.flatnonzero(names == name))
        gallery_rows += rows[:enroll].tolist()
        owners += [p] * len(rows[:enroll])
        query_rows += rows[enroll:].tolist()
        query_owner += [p] * len(rows[enroll:])
    impostor_rows = np.flatnonzero(~np.isin(names, people))
    return identify(score, threshold, embeddings[gallery_rows], np.array(owners),
                    embeddings[query_rows], np.array(query_owner), embeddings[impostor_rows],
                    top_k)


def choose_identification_threshold(embeddings: np.ndarray, names: np.ndarray, score: ScoreFn, *,
                                    far_target: float = 0.05, enroll: int = 5,
                                    min_images: int = 6, class_size: int | None = 30,
                                    draws: int = 10, seed: int = 0) -> float:
    """The lowest threshold whose identification false-accept rate is at most ``far_target``.

    Galleries of ``class_size`` people (random draws among those with ``min_images``
    photos; None = all of them) enroll ``enroll`` photos each; every photo of anyone not
    enrolled is a stranger. The false-accept rate grows with the number of enrolled
    people (a stranger gets more chances), so calibrate at the size of a class.
    Use training people only: this is calibration.
    """
    people, counts = np.unique(names, return_counts=True)
    eligible = people[counts >= min_images].tolist()
    rng = np.random.default_rng(seed)
    best: list[np.ndarray] = []
    n_draws = 1 if class_size is None or class_size >= len(eligible) else draws
    for _ in range(n_draws):
        chosen = eligible if n_draws == 1 else rng.choice(eligible, class_size, replace=False).tolist()
        gallery_rows, owners = [], []
        for p, name in enumerate(chosen):
            rows = rng.permutation(np.flatnonzero(names == name))[:enroll]
            gallery_rows += rows.tolist()
            owners += [p] * len(rows)
        impostors = embeddings[np.flatnonzero(~np.isin(names, chosen))]
        best.append(person_scores(score, impostors, embeddings[gallery_rows], np.array(owners),
                                  len(chosen)).max(axis=1))
    return float(np.quantile(np.concatenate(best), 1.0 - far_target)) + 1e-6


def average_results(results: list[IdentificationResult]) -> IdentificationResult:
    first = results[0]
    return IdentificationResult(
        people=first.people, enrolled_per_person=first.enrolled_per_person,
        queries=int(np.mean([r.queries for r in results])),
        impostors=int(np.mean([r.impostors for r in results])),
        rank1=float(np.mean([r.rank1 for r in results])),
        rank1_ignoring_threshold=float(np.mean([r.rank1_ignoring_threshold for r in results])),
        false_accept_rate=float(np.mean([r.false_accept_rate for r in results])),
        draws=len(results))


# ----------------------------------------------------------- the full report

@dataclass(frozen=True)
class PairFigures:
    accuracy: float
    auc: float
    tar_at_far_1e_2: float
    tar_at_far_1e_3: float
    threshold: float
    best_accuracy: float  # at the best threshold for the test pairs: an oracle, for reference
    pairs: int


@dataclass(frozen=True)
class Evaluation:
    model: str
    pairs_devtest: PairFigures
    identification_93x5: IdentificationResult
    identification_30x5: IdentificationResult
    #: The same benchmarks at the sidecar's stricter ``identification_threshold``, if any.
    identification_threshold: float | None = None
    identification_93x5_strict: IdentificationResult | None = None
    identification_30x5_strict: IdentificationResult | None = None

    def as_dict(self) -> dict[str, Any]:
        """The ``evaluate --json`` object (keys as in the issue, plus the strict ones)."""
        pairs = asdict(self.pairs_devtest)
        pairs["tar_at_far_1e-2"] = pairs.pop("tar_at_far_1e_2")
        pairs["tar_at_far_1e-3"] = pairs.pop("tar_at_far_1e_3")
        out: dict[str, Any] = {"model": self.model, "pairs_devtest": pairs,
                               "identification_93x5": asdict(self.identification_93x5),
                               "identification_30x5": asdict(self.identification_30x5)}
        if self.identification_threshold is not None:
            out["identification_threshold"] = self.identification_threshold
            out["identification_93x5_strict"] = asdict(self.identification_93x5_strict)  # type: ignore[arg-type]
            out["identification_30x5_strict"] = asdict(self.identification_30x5_strict)  # type: ignore[arg-type]
        return out


def pair_figures(scores: np.ndarray, same: np.ndarray, threshold: float) -> PairFigures:
    return PairFigures(accuracy=accuracy_at(scores, same, threshold), auc=roc_auc(scores, same),
                       tar_at_far_1e_2=tar_at_far(scores, same, 1e-2),
                       tar_at_far_1e_3=tar_at_far(scores, same, 1e-3), threshold=float(threshold),
                       best_accuracy=best_threshold(scores, same)[1], pairs=int(len(same)))


class _ModelScorer:
    """Embeddings and scores straight from a saved siamese model (same maths as the
    recognizer: head probability on |e_a - e_b|)."""

    def __init__(self, path: str | Path) -> None:
        import keras

        from model import network  # noqa: F401  (registers the custom layers)

        self.model = keras.saving.load_model(path, compile=False)
        sidecar = Path(path).with_suffix(".json")
        meta = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
        self.threshold = float(meta.get("threshold", 0.5))
        self.meta = meta
        kernel, bias = self.model.get_layer("head").get_weights()
        self._w = np.asarray(kernel, np.float64)[:, 0]
        self._b = float(np.asarray(bias)[0])

    def embed(self, crops: np.ndarray) -> np.ndarray:
        from model.training import embed_faces

        return embed_faces(self.model.get_layer("embedding"), crops)

    def score(self, q: np.ndarray, g: np.ndarray) -> np.ndarray:
        out = np.empty((len(q), len(g)), dtype=np.float32)
        for begin in range(0, len(q), 256):  # chunks keep the [m, n, d] block small
            diff = np.abs(q[begin:begin + 256, None, :].astype(np.float64) - g[None, :, :])
            out[begin:begin + 256] = 1.0 / (1.0 + np.exp(-(diff @ self._w + self._b)))
        return out


def load_scorer(path: str | Path) -> Any:
    """The lead's ``Recognizer`` when available (``embed``, ``score``, ``threshold``),
    else a scorer on the saved keras model with the same interface."""
    try:
        from model.recognizer import load_recognizer

        return load_recognizer(path)
    except (ImportError, AttributeError):
        return _ModelScorer(path)


def evaluate_model(path: str | Path, *, lfw_root: str | Path | None = None,
                   aligned: Any = None, draws_30: int = 5, seed: int = 0,
                   scorer: Any = None, progress: Callable[[str], None] | None = None
                   ) -> Evaluation:
    """Every figure of the module docstring for the saved model at ``path``."""
    from model import lfw

    report = progress or (lambda message: None)
    scorer = scorer or load_scorer(path)
    aligned = aligned if aligned is not None else lfw.load_aligned_lfw(lfw_root)
    test_people = lfw.people_dev_test(lfw_root)
    rows = aligned.rows(name for name, _ in test_people)
    report(f"embedding {len(rows)} DevTest photos")
    embeddings = np.asarray(scorer.embed(aligned.crops[rows]), dtype=np.float32)
    names = aligned.names[rows]
    position = {int(r): i for i, r in enumerate(rows)}
    a, b, same = aligned.pair_rows(lfw.pairs_dev_test(lfw_root))
    ea = embeddings[[position[int(r)] for r in a]]
    eb = embeddings[[position[int(r)] for r in b]]
    scores = np.array([float(scorer.score(x[None], y[None])[0, 0]) for x, y in zip(ea, eb, strict=False)])
    threshold = float(scorer.threshold)
    pairs = pair_figures(scores, same, threshold)
    report(f"pairs: accuracy {pairs.accuracy:.3f}, AUC {pairs.auc:.3f}")
    many = sorted(name for name, count in test_people if count >= 6)
    id93 = identification_benchmark(embeddings, names, scorer.score, threshold,
                                    people=many, seed=seed)
    report(f"93x5: rank-1 {id93.rank1:.3f}, FAR {id93.false_accept_rate:.3f}")
    rng = np.random.default_rng(seed)
    classes = [sorted(rng.choice(many, 30, replace=False).tolist()) for _ in range(draws_30)]

    def class_size(t: float) -> IdentificationResult:
        return average_results([identification_benchmark(embeddings, names, scorer.score, t,
                                                         people=people, seed=seed + d)
                                for d, people in enumerate(classes)])

    strict = _identification_threshold(scorer)
    extra: dict[str, Any] = {}
    if strict is not None:
        extra = {"identification_threshold": strict,
                 "identification_93x5_strict": identification_benchmark(
                     embeddings, names, scorer.score, strict, people=many, seed=seed),
                 "identification_30x5_strict": class_size(strict)}
    return Evaluation(model=str(path), pairs_devtest=pairs, identification_93x5=id93,
                      identification_30x5=class_size(threshold), **extra)


def _identification_threshold(scorer: Any) -> float | None:
    card = getattr(scorer, "card", None) or getattr(scorer, "meta", None) or {}
    value = card.get("identification_threshold")
    return float(value) if value is not None else None


def pair_scores_devtest(path: str | Path, *, lfw_root: str | Path | None = None,
                        aligned: Any = None, scorer: Any = None
                        ) -> tuple[np.ndarray, np.ndarray, float]:
    """(scores, same, threshold) of the pairsDevTest pairs: for ROC plots and histograms."""
    from model import lfw

    scorer = scorer or load_scorer(path)
    aligned = aligned if aligned is not None else lfw.load_aligned_lfw(lfw_root)
    a, b, same = aligned.pair_rows(lfw.pairs_dev_test(lfw_root))
    ea, eb = scorer.embed(aligned.crops[a]), scorer.embed(aligned.crops[b])
    scores = np.array([float(scorer.score(x[None], y[None])[0, 0]) for x, y in zip(ea, eb, strict=False)])
    return scores, same, float(scorer.threshold)


# ------------------------------------------------------------------- the CLI

def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``python -m model evaluate``."""
    parser.add_argument("--model", type=Path, default=None,
                        help="a .keras file (default: the active model)")
    parser.add_argument("--lfw", type=Path, default=None, help="LFW folder (default: setting)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--draws", type=int, default=5, help="random draws of the 30x5 variant")


def _active_model() -> Path:
    from model.settings import get_settings

    try:  # the recognizer's notion of "active": fine-tuned if any, else the shipped base
        from model.recognizer import active_model_path

        found = active_model_path()
        if found is not None:
            return Path(found)
    except ImportError:
        pass
    return get_settings().base_model_path


def run_evaluate(args: argparse.Namespace) -> int:
    """``python -m model evaluate [--json]``: prints the figures; returns an exit code."""
    from model import lfw

    path = args.model or _active_model()
    if not lfw.lfw_available(args.lfw):
        print(f"LFW not found in {args.lfw or lfw.lfw_dir()} (set FACEATT_LFW_DIR).")
        return 2
    result = evaluate_model(path, lfw_root=args.lfw, draws_30=args.draws,
                            progress=None if args.json else print)
    if args.json:
        print(json.dumps(result.as_dict()))
        return 0
    p, i93, i30 = result.pairs_devtest, result.identification_93x5, result.identification_30x5
    print(f"model: {path}")
    print(f"pairsDevTest ({p.pairs} pairs): accuracy {p.accuracy:.3f} at threshold "
          f"{p.threshold:.3f} (from pairsDevTrain); AUC {p.auc:.3f}; "
          f"TAR@FAR=1e-2 {p.tar_at_far_1e_2:.3f}; TAR@FAR=1e-3 {p.tar_at_far_1e_3:.3f}")
    groups: list[tuple[str, list[tuple[str, IdentificationResult | None]]]] = [
        (f"at the pair threshold {p.threshold:.3f}:",
         [("93x5", i93), (f"30x5 (mean of {i30.draws} draws)", i30)])]
    if result.identification_threshold is not None:
        groups.append((f"at the stricter identification threshold "
                       f"{result.identification_threshold:.3f} (the one the app names faces with):",
                       [("93x5", result.identification_93x5_strict),
                        (f"30x5 (mean of {i30.draws} draws)", result.identification_30x5_strict)]))
    for heading, runs in groups:
        print(heading)
        for label, r in runs:
            if r is None:
                continue
            print(f"  identification {label}: rank-1 {r.rank1:.3f} "
                  f"(ignoring the threshold {r.rank1_ignoring_threshold:.3f}) on {r.queries} "
                  f"queries; false accepts {r.false_accept_rate:.3f} of {r.impostors} impostors")
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m model.evaluation")
    add_evaluate_arguments(_parser)
    raise SystemExit(run_evaluate(_parser.parse_args()))
