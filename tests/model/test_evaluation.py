"""Evaluation metrics (pure numpy) and a handful of real LFW pairs."""

from __future__ import annotations

import numpy as np
import pytest

from model import evaluation


def _auc_brute_force(scores: np.ndarray, same: np.ndarray) -> float:
    pos, neg = scores[same == 1], scores[same == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (len(pos) * len(neg)))


@pytest.mark.parametrize("seed", range(4))
def test_auc_matches_the_pairwise_definition(seed):
    rng = np.random.default_rng(seed)
    same = rng.integers(0, 2, 60)
    scores = np.round(rng.random(60) + 0.3 * same, 1)  # rounding makes ties
    assert evaluation.roc_auc(scores, same) == pytest.approx(_auc_brute_force(scores, same))


def test_perfect_and_reversed_scores():
    same = np.array([1, 1, 0, 0])
    good = np.array([0.9, 0.8, 0.2, 0.1])
    assert evaluation.roc_auc(good, same) == pytest.approx(1.0)
    assert evaluation.roc_auc(-good, same) == pytest.approx(0.0)
    threshold, acc = evaluation.best_threshold(good, same)
    assert acc == 1.0 and 0.2 < threshold < 0.8
    assert evaluation.accuracy_at(good, same, threshold) == 1.0
    assert evaluation.tar_at_far(good, same, 0.0) == 1.0


def test_tar_at_far_counts_false_accepts():
    # 4 different-person pairs; one scores above two of the same-person pairs.
    scores = np.array([0.9, 0.8, 0.6, 0.5, 0.7, 0.3, 0.2, 0.1])
    same = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    assert evaluation.tar_at_far(scores, same, 0.0) == 0.5      # above 0.7: two of four
    assert evaluation.tar_at_far(scores, same, 0.25) == 1.0     # allows the 0.7 one


def test_identification_rank1_and_false_accepts():
    # Embeddings on a line; score = 1 - distance. Two people, one impostor far away.
    score = lambda q, g: 1.0 - np.abs(q[:, None, 0] - g[None, :, 0])
    gallery = np.array([[0.0], [0.05], [1.0], [1.05]])
    owners = np.array([0, 0, 1, 1])
    genuine = np.array([[0.02], [0.98], [0.6]])
    genuine_owner = np.array([0, 1, 0])  # the last query is closer to person 1: a miss
    impostors = np.array([[3.0], [0.5]])  # the second one is accepted at threshold 0.4
    result = evaluation.identify(score, 0.4, gallery, owners, genuine, genuine_owner, impostors)
    assert result.rank1 == pytest.approx(2 / 3)
    assert result.false_accept_rate == pytest.approx(0.5)
    assert result.people == 2 and result.enrolled_per_person == 2


def test_identification_threshold_keeps_false_accepts_near_the_target():
    rng = np.random.default_rng(0)
    names = np.array([f"p{i}" for i in range(20) for _ in range(6)] + [f"x{i}" for i in range(200)])
    centres = {n: rng.normal(size=8) for n in sorted(set(names))}  # sorted: set order varies by process
    emb = np.stack([centres[n] + rng.normal(0, 0.3, 8) for n in names])
    score = lambda q, g: np.exp(-np.linalg.norm(q[:, None] - g[None], axis=2))
    t = evaluation.choose_identification_threshold(emb, names, score, far_target=0.1)
    result = evaluation.identification_benchmark(emb, names, score, t,
                                                  people=[f"p{i}" for i in range(20)])
    # Calibration and this measurement enroll different random photos, so the rate lands
    # near the target, not on it: 200 strangers give a standard error of about 0.02.
    assert abs(result.false_accept_rate - 0.1) <= 0.03


@pytest.mark.slow
@pytest.mark.lfw
def test_a_handful_of_lfw_pairs(lfw_dir, tmp_path):
    """Align the photos of 8 DevTest pairs and score them with the shipped model."""
    import keras

    from model import lfw
    from model.settings import get_settings
    from model.training import embed_faces, head_scores

    base = get_settings().base_model_path
    if not base.is_file():
        pytest.skip(f"no shipped model at {base}")
    pairs = lfw.pairs_dev_test(lfw_dir)
    chosen = pairs[:4] + pairs[-4:]
    needed = sorted({(p.name_a, max(p.index_a, p.index_b if p.same else 0)) for p in chosen}
                    | {(p.name_b, p.index_b) for p in chosen})
    people: dict[str, int] = {}
    for name, count in needed:
        people[name] = max(people.get(name, 0), count)
    aligned = lfw.align_lfw(lfw_dir, sorted(people.items()))
    a, b, same = aligned.pair_rows(chosen)
    siamese = keras.saving.load_model(base, compile=False)
    embedding = siamese.get_layer("embedding")
    scores = head_scores(siamese, embed_faces(embedding, aligned.crops[a]),
                         embed_faces(embedding, aligned.crops[b]))
    figures = evaluation.pair_figures(scores, same, 0.5)
    assert 0.0 <= figures.auc <= 1.0 and figures.pairs == 8
    # The shipped model tells these apart far better than chance.
    assert figures.auc >= 0.75
