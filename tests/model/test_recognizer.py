"""Scoring: the vectorised head equals the Keras Siamese model; per-person aggregation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from model.api import aggregate_by_person


def _brute_force(scores: np.ndarray, person_index: np.ndarray, people: int, top_k: int) -> np.ndarray:
    out = np.zeros((scores.shape[0], people), dtype=np.float64)
    for i in range(scores.shape[0]):
        for p in range(people):
            mine = sorted((scores[i, j] for j in range(scores.shape[1]) if person_index[j] == p),
                          reverse=True)[:top_k]
            out[i, p] = np.mean(mine) if mine else 0.0
    return out


@pytest.mark.parametrize("seed, shuffled", [(0, False), (1, True), (2, False), (3, True)])
@pytest.mark.parametrize("top_k", [1, 2, 3, 5])
def test_aggregate_by_person_matches_brute_force(seed, shuffled, top_k):
    rng = np.random.default_rng(seed)
    people = int(rng.integers(1, 12))
    counts = rng.integers(1, 7, size=people)  # some people with a single image
    person_index = np.repeat(np.arange(people), counts).astype(np.int32)
    if shuffled:
        rng.shuffle(person_index)
    scores = rng.random((int(rng.integers(1, 5)), len(person_index))).astype(np.float32)
    got = aggregate_by_person(scores, person_index, people, top_k)
    assert got.shape == (scores.shape[0], people) and got.dtype == np.float32
    np.testing.assert_allclose(got, _brute_force(scores, person_index, people, top_k), atol=1e-6)


def test_aggregate_by_person_empty_and_ties():
    assert aggregate_by_person(np.zeros((2, 0), np.float32), np.zeros(0, np.int32), 0, 2).shape == (2, 0)
    scores = np.array([[0.5, 0.5, 0.5, 0.9]], dtype=np.float32)
    got = aggregate_by_person(scores, np.array([0, 0, 0, 1], np.int32), 2, 2)
    np.testing.assert_allclose(got, [[0.5, 0.9]])


# ----- the real network (slow: TensorFlow) ------------------------------------------

@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A fresh compact Siamese model with a non-trivial head, saved and reloaded."""
    import keras

    from model.network import build_embedding, build_siamese
    from model.recognizer import load_recognizer, save_recognizer

    keras.utils.set_random_seed(7)
    siamese = build_siamese(build_embedding("compact"))
    head = siamese.get_layer("head")
    kernel, _ = head.get_weights()
    rng = np.random.default_rng(7)
    head.set_weights([rng.normal(0, 3.0, kernel.shape).astype(np.float32), np.array([0.8], np.float32)])
    path = tmp_path_factory.mktemp("models") / "test.keras"
    card = {"architecture": "compact", "threshold": 0.61, "trained": True, "kind": "test"}
    save_recognizer(siamese, path, card)
    return siamese, path, load_recognizer(path)


def _crops(n: int, size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


@pytest.mark.slow
def test_score_matches_the_keras_siamese_model(saved_model):
    siamese, _, recognizer = saved_model
    size = recognizer.input_size
    a, b = _crops(6, size, 1), _crops(6, size, 2)
    b[0] = a[0]  # one identical pair
    expected = np.asarray(siamese([a.astype(np.float32), b.astype(np.float32)], training=False))[:, 0]
    got = np.diag(recognizer.score(recognizer.embed(a), recognizer.embed(b)))
    assert np.ptp(expected) > 1e-3  # the head is not constant, so the comparison means something
    np.testing.assert_allclose(got, expected, atol=1e-5)
    pair = recognizer.score_pair(recognizer.embed(a[:1])[0], recognizer.embed(b[:1])[0])
    assert pair == pytest.approx(float(expected[0]), abs=1e-5)


@pytest.mark.slow
def test_score_shape_and_entries(saved_model):
    _, _, recognizer = saved_model
    q = recognizer.embed(_crops(3, 112, 3))  # 112 crops are resized to the input size
    g = recognizer.embed(_crops(5, 112, 4))
    assert q.shape == (3, recognizer.embedding_dim) and q.dtype == np.float32
    scores = recognizer.score(q, g)
    assert scores.shape == (3, 5) and scores.dtype == np.float32
    assert np.all((scores >= 0) & (scores <= 1))
    for i in range(3):
        for j in range(5):
            assert scores[i, j] == pytest.approx(recognizer.score_pair(q[i], g[j]), abs=1e-6)
    assert recognizer.score(q[0], g).shape == (1, 5)  # a single [d] query
    assert recognizer.score(q, np.zeros((0, q.shape[1]), np.float32)).shape == (3, 0)
    assert recognizer.embed(np.zeros((0, 112, 112, 3), np.uint8)).shape == (0, recognizer.embedding_dim)
    assert recognizer.embed([]).shape == (0, recognizer.embedding_dim)


@pytest.mark.slow
def test_save_load_round_trip(saved_model):
    from model.recognizer import file_version, load_recognizer, sidecar_path

    siamese, path, recognizer = saved_model
    card = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
    assert card["threshold"] == 0.61 and "saved_at" in card
    assert recognizer.threshold == 0.61 and recognizer.trained
    assert recognizer.version == file_version(path) and recognizer.path == path
    head_kernel, head_bias = siamese.get_layer("head").get_weights()
    np.testing.assert_array_equal(recognizer.head_weights, head_kernel.reshape(-1))
    assert recognizer.head_bias == pytest.approx(float(head_bias[0]))
    again = load_recognizer(path)
    crops = _crops(4, recognizer.input_size, 5)
    np.testing.assert_allclose(again.embed(crops), recognizer.embed(crops), atol=1e-6)
    assert not list(path.parent.glob(".tmp-*"))  # atomic save leaves no temporary files


@pytest.mark.slow
def test_bad_model_files_are_model_errors(tmp_path):
    from model.errors import ModelError
    from model.recognizer import load_recognizer

    with pytest.raises(ModelError):
        load_recognizer(tmp_path / "missing.keras")
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a zip")
    with pytest.raises(ModelError):
        load_recognizer(broken)


@pytest.mark.slow
def test_untrained_recognizer_is_labelled_and_stable(tmp_path):
    from model.recognizer import untrained_recognizer

    first = untrained_recognizer()
    assert not first.trained and "untrained" in first.label and "untrained" in first.version
    crops = _crops(2, 112, 6)
    np.testing.assert_allclose(untrained_recognizer().embed(crops), first.embed(crops), atol=1e-5)


@pytest.mark.slow
def test_a_crash_while_saving_leaves_the_working_model_intact(saved_model):
    """Training or fine-tuning that dies mid-save must not damage the model in use."""
    from model.recognizer import file_version, load_recognizer, save_recognizer, sidecar_path

    siamese, path, _ = saved_model
    before = (path.read_bytes(), sidecar_path(path).read_bytes())

    class Boom(RuntimeError):
        pass

    class Dies:
        def save(self, target):  # writes half a file, then the process "crashes"
            with open(target, "wb") as handle:
                handle.write(b"PK\x03\x04 half a zip")
            raise Boom("power cut")

    with pytest.raises(Boom):
        save_recognizer(Dies(), path, {"threshold": 0.99})
    assert (path.read_bytes(), sidecar_path(path).read_bytes()) == before
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".tmp-")] == []
    assert load_recognizer(path).version == file_version(path)
