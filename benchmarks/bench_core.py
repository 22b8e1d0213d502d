"""Figures for the core pipeline (issue 2): detection, embedding and identification costs.

Run: ``python benchmarks/bench_core.py [--json] [--repeats N]``. Every figure is the median
of several runs. Identification is timed *beyond* the query's own embedding: float64 cosines
over cached gallery embeddings, ``aggregate_by_person`` and the whole open-set rule (S-norm
against the cohort, margin, adaptive threshold), against the seed approach of running the
whole pair network once per gallery image. The target is under 5 ms for 10,000 cached
embeddings; preparing the gallery for the rule runs once per gallery change and is shown apart.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model.core.runtime import import_tensorflow_quietly

GALLERY_SIZES = (10, 100, 1_000, 10_000)
IMAGES_PER_PERSON = 10
TARGET_MS = 5.0
#: The seed approach is timed for real up to this many gallery images, extrapolated beyond.
SEED_MAX_TIMED = 1_000
SEED_BATCH = 256


def median_ms(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``repeats`` runs (after warm-up runs)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def webcam_frame(width: int = 640, height: int = 480) -> np.ndarray:
    """The astronaut resized to the frame height and padded left/right (one face)."""
    import cv2
    from skimage import data

    side = min(width, height)
    frame = np.zeros((height, width, 3), dtype=np.uint8)
    left = (width - side) // 2
    frame[:side, left:left + side] = cv2.resize(data.astronaut(), (side, side), interpolation=cv2.INTER_AREA)
    return frame


def machine() -> dict[str, Any]:
    import keras
    import tensorflow as tf

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpus": os.cpu_count(), "usable_cpus": usable, "python": platform.python_version(),
            "tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__,
            "gpus": len(tf.config.list_physical_devices("GPU"))}


def bench_detection(repeats: int) -> dict[str, float]:
    from model.core.detection import load_detector

    detector = load_detector()
    frame = webcam_frame()
    assert len(detector.detect(frame)) == 1, "the benchmark frame should show one face"
    return {
        f"detect_ms_640x480_max_side_{detector.max_side}": median_ms(lambda: detector.detect(frame), repeats),
        "detect_ms_640x480_max_side_320": median_ms(lambda: detector.detect(frame, max_side=320), repeats),
    }


def bench_embedding(recognizer: Any, repeats: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    one = rng.integers(0, 256, (1, 112, 112, 3), dtype=np.uint8)
    sixteen = rng.integers(0, 256, (16, 112, 112, 3), dtype=np.uint8)
    return {
        "embed_ms_per_face_batch_1": median_ms(lambda: recognizer.embed(one), repeats * 2, warmup=2),
        "embed_ms_per_face_batch_16": median_ms(lambda: recognizer.embed(sixteen), repeats, warmup=2) / 16,
    }


def _seed_pair_network(recognizer: Any) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The seed design's per-pair call: the full Siamese model on [query repeated n, gallery crops]."""
    import keras
    import tensorflow as tf

    from model.core.network import build_cosine_siamese

    if recognizer.path is not None:
        siamese = keras.saving.load_model(recognizer.path, compile=False)
    else:  # untrained: same towers, a fresh head (costs the same)
        siamese = build_cosine_siamese(recognizer.embedding_model)
    forward = tf.function(lambda a, b: siamese([a, b], training=False), reduce_retracing=True)

    def run(query: np.ndarray, gallery: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(gallery), SEED_BATCH):
            part = gallery[start:start + SEED_BATCH]
            repeated = np.repeat(query, len(part), axis=0)
            out.append(forward(tf.convert_to_tensor(repeated), tf.convert_to_tensor(part)).numpy())
        return np.concatenate(out)[:, 0]

    return run


def bench_identification(recognizer: Any, repeats: int, top_k: int) -> dict[str, Any]:
    from model.core.matching import GalleryIndex, aggregate_by_person

    rng = np.random.default_rng(1)
    d = recognizer.embedding_dim
    size = recognizer.input_size
    seed_run = _seed_pair_network(recognizer)
    query_crop = rng.integers(0, 256, (1, size, size, 3)).astype(np.float32)
    seed_crops = rng.integers(0, 256, (SEED_MAX_TIMED, size, size, 3)).astype(np.float32)
    query = recognizer.embed(query_crop.astype(np.uint8))
    rows = []
    for n in GALLERY_SIZES:
        gallery = rng.normal(size=(n, d)).astype(np.float32)
        gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
        person_index = (np.arange(n) // IMAGES_PER_PERSON).astype(np.int32)
        people = int(person_index[-1]) + 1

        def ours(gallery: np.ndarray = gallery, person_index: np.ndarray = person_index,
                 people: int = people) -> np.ndarray:
            return aggregate_by_person(recognizer.score(query, gallery), person_index, people, top_k)

        def score_only(gallery: np.ndarray = gallery) -> np.ndarray:
            return recognizer.score(query, gallery)

        started = time.perf_counter()
        index = GalleryIndex.prepare(gallery, person_index, people, recognizer.cohort, recognizer.rule)
        prepare_ms = (time.perf_counter() - started) * 1000

        def rule(index: GalleryIndex = index) -> object:
            return index.decide(query)

        timed = min(n, SEED_MAX_TIMED)

        def seed(timed: int = timed) -> np.ndarray:
            return seed_run(query_crop, seed_crops[:timed])

        ours_ms = median_ms(ours, max(repeats * 5, 20), warmup=3)
        rule_ms = median_ms(rule, max(repeats * 5, 20), warmup=3)
        score_ms = median_ms(score_only, max(repeats * 5, 20), warmup=3)
        seed_repeats = repeats if timed <= 100 else max(2, repeats // 3)
        seed_ms = median_ms(seed, seed_repeats)
        extrapolated = timed < n
        seed_ms *= n / timed
        rows.append({"gallery": n, "people": people, "identify_ms": ours_ms, "score_ms": score_ms,
                     "aggregate_ms": max(ours_ms - score_ms, 0.0), "rule_ms": rule_ms,
                     "prepare_ms": prepare_ms, "seed_ms": seed_ms,
                     "seed_extrapolated_from": timed if extrapolated else None,
                     "speedup": seed_ms / rule_ms})
    return {"identification": rows, "top_k": top_k, "images_per_person": IMAGES_PER_PERSON}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--repeats", type=int, default=7, help="runs per figure (median reported)")
    args = parser.parse_args(argv)

    import_tensorflow_quietly()
    from model.core.recognizer import load_recognizer

    recognizer = load_recognizer()
    recognizer.warm_up()
    figures: dict[str, Any] = {"machine": machine(), "model": recognizer.label,
                               "trained": recognizer.trained}
    figures.update(bench_detection(args.repeats))
    figures.update(bench_embedding(recognizer, args.repeats))
    figures.update(bench_identification(recognizer, args.repeats, recognizer.rule.top_k))
    worst = figures["identification"][-1]
    figures["target_ms"] = TARGET_MS
    figures["meets_target"] = worst["rule_ms"] < TARGET_MS

    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    m = figures["machine"]
    print(f"machine: {m['cpus']} CPUs ({m['usable_cpus']} usable), {m['gpus']} GPU, python {m['python']}, "
          f"TensorFlow {m['tensorflow']}, Keras {m['keras']}, numpy {m['numpy']}")
    print(f"model:   {figures['model']}{'' if figures['trained'] else '  [UNTRAINED]'}")
    print(f"(medians of {args.repeats}+ runs; the machine may be shared, so figures are noisy)")
    for key, value in figures.items():
        if key.startswith("detect_ms"):
            print(f"detection, 640x480 frame, max_side={key.rsplit('_', 1)[1]:>5}: {value:8.1f} ms")
    print(f"embedding per face, batch 1:                {figures['embed_ms_per_face_batch_1']:8.2f} ms")
    print(f"embedding per face, batch 16:               {figures['embed_ms_per_face_batch_16']:8.2f} ms")
    print(f"identification per query beyond its embedding ({IMAGES_PER_PERSON} images/person, "
          f"top_k={figures['top_k']}): cosine scores, per-person aggregation, and the whole open-set "
          f"rule (S-norm, margin, adaptive threshold); 'prepare' runs once per gallery change:")
    header = (("gallery", 8), ("people", 7), ("score", 8), ("aggr.", 8), ("rule ms", 9), ("prepare", 9),
              ("seed ms", 11))
    print(" ".join(f"{title:>{width}}" for title, width in header) + f" {'ratio':>9}")
    for row in figures["identification"]:
        note = f"  (seed extrapolated from {row['seed_extrapolated_from']:,})" \
            if row["seed_extrapolated_from"] else ""
        print(f"{row['gallery']:>8,} {row['people']:>7,} {row['score_ms']:>8.3f} {row['aggregate_ms']:>8.3f} "
              f"{row['rule_ms']:>9.3f} {row['prepare_ms']:>9.0f} {row['seed_ms']:>11.1f} "
              f"{row['speedup']:>8.0f}x{note}")
    verdict = "meets" if figures["meets_target"] else "MISSES"
    print(f"target: identification against {worst['gallery']:,} cached embeddings < {TARGET_MS} ms: "
          f"{verdict} ({worst['rule_ms']:.2f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
