"""The grouping figures of ``benchmarks/bench_cluster.py`` (BCubed, pairwise, same-photo
merges) on small hand-made partitions; the benchmark itself is ``make bench-cluster``."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.bench_cluster import cluster_figures


def test_a_perfect_grouping_scores_one():
    truth = np.array([0, 0, 1, 1, 2])
    figures = cluster_figures(np.array([5, 5, 7, 7, 9]), truth, np.array([0, 1, 0, 1, 0]))
    assert figures["bcubed_f"] == figures["pair_f"] == 1.0
    assert figures["groups"] == figures["people"] == 3
    assert figures["unsure"] == 0.0 and figures["same_photo_merges"] == 0


def test_merges_splits_and_unsure_faces_are_counted():
    truth = np.array([0, 0, 1, 1])
    photos = np.array([0, 1, 0, 1])
    merged = cluster_figures(np.array([0, 0, 0, 0]), truth, photos)
    # BCubed precision: each face's group holds 2 of its own 4 faces.
    assert merged["bcubed_precision"] == pytest.approx(0.5) and merged["bcubed_recall"] == 1.0
    assert merged["pair_precision"] == pytest.approx(2 / 6)
    assert merged["same_photo_merges"] == 2 and merged["groups"] == 1
    unsure = cluster_figures(np.array([0, 0, -1, -1]), truth, photos)
    # Faces left unsure are each a group of their own: precision stays whole, recall drops.
    assert unsure["bcubed_precision"] == 1.0 and unsure["bcubed_recall"] == pytest.approx(0.75)
    assert unsure["unsure"] == 0.5 and unsure["groups"] == 1 and unsure["people"] == 2
