"""Training: a few steps lower the loss (both recipes), checkpoints resume, saving is atomic."""

from __future__ import annotations

import json

import numpy as np
import pytest

from model.learning import training

pytestmark = pytest.mark.slow


def _toy_faces(classes: int, per_class: int, size: int, seed: int = 0):
    """Each 'person' is a colour with a bright square somewhere; easy to tell apart."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for c in range(classes):
        colour = rng.integers(0, 256, 3)
        y, x = rng.integers(0, size // 2, 2)
        for _ in range(per_class):
            img = np.clip(colour + rng.normal(0, 12, (size, size, 3)), 0, 255)
            img[y : y + size // 3, x : x + size // 3] = 255
            images.append(img.astype(np.uint8))
            labels.append(c)
    return np.stack(images), np.array(labels, dtype=np.int32)


def test_a_few_cosface_epochs_lower_the_loss(tmp_path):
    images, labels = _toy_faces(4, 16, 32)
    config = training.TrainConfig(
        epochs=4, batch_size=16, width=8, input_size=32, learning_rate=5e-3, margin=0.1, scale=10.0
    )
    events = []
    backbone, history = training.train_embedding(
        images, labels, config, checkpoint_dir=tmp_path / "ckpt", progress=events.append
    )
    assert len(history["loss"]) == 4
    assert history["loss"][-1] < history["loss"][0]
    assert [e.done for e in events] == [1, 2, 3, 4] and events[-1].loss == history["loss"][-1]
    # A second call with the same config resumes from the checkpoint: nothing left to do.
    again, history2 = training.train_embedding(images, labels, config, checkpoint_dir=tmp_path / "ckpt")
    assert history2["loss"] == history["loss"]
    x = images[:3].astype(np.float32)
    np.testing.assert_allclose(
        np.asarray(again(x, training=False)), np.asarray(backbone(x, training=False)), atol=1e-5
    )


def test_a_few_pair_epochs_lower_the_koch_loss():
    images, labels = _toy_faces(4, 8, 64)
    # koch at 64 pixels (its smallest valid input) keeps this test fast.
    config = training.TrainConfig(
        architecture="koch",
        epochs=3,
        batch_size=16,
        input_size=64,
        learning_rate=1e-4,
        koch_steps_per_epoch=6,
    )
    siamese, history = training.train_pairs(images, labels, config)
    assert siamese.name == "siamese"
    assert history["loss"][-1] < history["loss"][0]


def test_fit_cosine_head_separates_clustered_embeddings():
    from model.core import network

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 16))
    names = np.repeat(np.array([f"p{i}" for i in range(6)]), 5)
    emb = centres[np.repeat(np.arange(6), 5)] + rng.normal(0, 0.1, (30, 16))
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    siamese = network.build_cosine_siamese(
        network.build_student_embedding(network.build_compact_backbone(32, 16, 8))
    )
    training.fit_cosine_head(siamese, emb, names, pairs=500)
    (alpha,), (beta,) = (
        siamese.get_layer("head").get_weights()[0][0],
        siamese.get_layer("head").get_weights()[1],
    )
    assert alpha > 0  # a higher cosine means more likely the same person
    same_p = 1 / (1 + np.exp(-(alpha * float(emb[0] @ emb[1]) + beta)))
    diff_p = 1 / (1 + np.exp(-(alpha * float(emb[0] @ emb[5]) + beta)))
    assert same_p > 0.5 > diff_p


def test_atomic_save_writes_model_and_card(tmp_path):
    from model.core import network
    from model.core.recognizer import save_recognizer

    siamese = network.build_cosine_siamese(
        network.build_student_embedding(network.build_compact_backbone(32, 16, 8)),
        np.ones((3, 16), np.float32),
    )
    path = tmp_path / "m.keras"
    save_recognizer(siamese, path, {"architecture": "student", "figures": {"x": 1}})
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["figures"] == {"x": 1} and "saved_at" in meta
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.keras"]  # no temp files


def test_cohort_rows_take_one_photo_of_distinct_people():
    names = np.array(["a", "a", "b", "c", "c", "c", "d"])
    rows = training.cohort_rows(names, size=3, seed=0)
    assert len(rows) == 3 and len(set(names[rows])) == 3


def test_random_pairs_are_balanced_and_correct():
    labels = np.array([0, 0, 1, 1, 1, 2])
    a, b, same = training._random_pairs(labels, 40, np.random.default_rng(0))
    assert same.sum() == 20
    assert np.all((labels[a] == labels[b]) == (same == 1))
    assert np.all(a[same == 1] != b[same == 1])
