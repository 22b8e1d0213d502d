"""Evaluation metrics (pure numpy) and a handful of real LFW pairs."""

from __future__ import annotations

import numpy as np
import pytest

from model.core.matching import GalleryIndex, MatchRule
from model.learning import evaluation


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


def _people(rng: np.random.Generator, n: int, per: int, dim: int = 16, noise: float = 0.3):
    centres = rng.normal(size=(n, dim))
    emb = np.concatenate([c + noise * rng.normal(size=(per, dim)) for c in centres])
    names = np.repeat(np.array([f"p{i:02d}" for i in range(n)]), per)
    return emb, names


def test_identification_protocol_counts_named_wrong_and_strangers():
    rng = np.random.default_rng(0)
    emb, names = _people(rng, 12, 8)
    strangers, stranger_names = _people(rng, 40, 1)
    emb = np.concatenate([emb, strangers])
    names = np.concatenate([names, np.char.add("x", stranger_names)])
    cohort = rng.normal(size=(200, 16))
    rule = MatchRule(name_threshold=2.0, margin=0.5)
    result = evaluation.identification_benchmark(emb, names, cohort, rule,
                                                 people=[f"p{i:02d}" for i in range(6)], seed=1)
    assert result.people == 6 and result.enrolled_per_person == 5
    assert result.queries == 6 * 3 and result.impostors == 6 * 8 + 40
    assert result.named + result.wrong_name <= 1.0 and result.named <= result.ranked_first
    assert result.named >= 0.8 and result.false_accept_rate <= 0.1
    # The same split, decided by hand with the rule, gives the same figures.
    g, owners, q, q_owner, stranger_rows = evaluation.enroll_split(
        names, [f"p{i:02d}" for i in range(6)], 5, 1)
    index = GalleryIndex.prepare(emb[g], owners, 6, cohort, rule)
    by_hand = np.mean([d.person == o for d, o in zip(index.decide(emb[q]), q_owner, strict=True)])
    assert result.named == pytest.approx(by_hand)


def test_calibrated_rule_keeps_strangers_near_the_target():
    rng = np.random.default_rng(1)
    emb, names = _people(rng, 60, 8, noise=0.45)
    few, few_names = _people(rng, 300, 1, noise=0.45)
    all_emb = np.concatenate([emb, few])
    all_names = np.concatenate([names, np.char.add("x", few_names)])
    cohort = rng.normal(size=(300, 16))
    rule, record = evaluation.calibrate_rule(all_emb, all_names, cohort, draws=6, far_target=0.03)
    assert record["false_accepts"] <= 0.03 and record["class_size"] == 30
    assert rule.margin in evaluation.MARGINS
    # Fresh people from the same world: strangers stay near the target.
    test_emb, test_names = _people(rng, 60, 8, noise=0.45)
    strangers, stranger_names = _people(rng, 300, 1, noise=0.45)
    result = evaluation.average_results([
        evaluation.identification_benchmark(
            np.concatenate([test_emb, strangers]),
            np.concatenate([test_names, np.char.add("x", stranger_names)]), cohort, rule,
            people=chosen, seed=d)
        for d, chosen in enumerate(evaluation.class_draws(sorted(set(test_names)), 30, 4, 9))])
    assert result.false_accept_rate <= 0.06 and result.named >= 0.5


@pytest.mark.slow
@pytest.mark.lfw
def test_a_handful_of_lfw_pairs(lfw_dir, tmp_path):
    """Align the photos of 8 DevTest pairs and score them with the shipped model."""
    from model.core.matching import pair_scores
    from model.core.recognizer import load_recognizer
    from model.learning import lfw
    from model.settings import get_settings

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
    recognizer = load_recognizer(base)
    _, scores = pair_scores(recognizer.embed(aligned.crops[a]), recognizer.embed(aligned.crops[b]),
                            recognizer.cohort, recognizer.rule)
    figures = evaluation.pair_figures(scores, same, recognizer.rule.pair_threshold)
    assert 0.0 <= figures.auc <= 1.0 and figures.pairs == 8
    # The shipped model tells these apart far better than chance.
    assert figures.auc >= 0.75
