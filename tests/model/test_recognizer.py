"""The recognizer: the one scorer (float64 cosines) equals the Keras Siamese model's cosine,
the cohort travels inside the model file (through the adapter), saves are atomic."""

from __future__ import annotations

import json

import numpy as np
import pytest

# ----- the real network (slow: TensorFlow) ------------------------------------------

@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A small student Siamese model (cosine head, a cohort, a non-identity adapter), saved
    and reloaded."""
    import keras

    from model.core.network import build_compact_backbone, build_cosine_siamese, build_student_embedding
    from model.core.recognizer import load_recognizer, save_recognizer

    keras.utils.set_random_seed(7)
    embedding = build_student_embedding(build_compact_backbone(48, 16, 8))
    rng = np.random.default_rng(7)
    adapter = embedding.get_layer("adapter")
    adapter.set_weights([np.eye(16, dtype=np.float32) + rng.normal(0, 0.3, (16, 16)).astype(np.float32)])
    cohort = rng.normal(size=(20, 16)).astype(np.float32)
    siamese = build_cosine_siamese(embedding, cohort)
    path = tmp_path_factory.mktemp("models") / "test.keras"
    card = {"architecture": "student", "trained": True, "kind": "test",
            "match_rule": {"name_threshold": 3.5, "margin": 0.7, "pair_threshold": 2.25}}
    save_recognizer(siamese, path, card)
    return siamese, path, load_recognizer(path), cohort


def _crops(n: int, size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


@pytest.mark.slow
def test_score_is_the_keras_siamese_cosine(saved_model):
    import keras

    siamese, _, recognizer, _ = saved_model
    size = recognizer.input_size
    a, b = _crops(6, size, 1), _crops(6, size, 2)
    b[0] = a[0]  # one identical pair
    cosine_of = keras.Model(siamese.inputs, siamese.get_layer("cosine").output)
    expected = np.asarray(cosine_of([a.astype(np.float32), b.astype(np.float32)], training=False))[:, 0]
    got = np.diag(recognizer.score(recognizer.embed(a), recognizer.embed(b)))
    assert np.ptp(expected) > 1e-3  # not constant, so the comparison means something
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert got[0] == pytest.approx(1.0, abs=1e-5)
    pair = recognizer.score_pair(recognizer.embed(a[:1])[0], recognizer.embed(b[:1])[0])
    assert pair == pytest.approx(float(expected[0]), abs=1e-5)


@pytest.mark.slow
def test_rule_and_cohort_come_from_the_model(saved_model):
    _, _, recognizer, cohort = saved_model
    assert recognizer.rule.name_threshold == 3.5 and recognizer.rule.margin == 0.7
    assert recognizer.rule.pair_threshold == 2.25
    # The stored cohort is in the base space: the recognizer maps it through the adapter.
    adapter = recognizer.embedding_model.get_layer("adapter").get_weights()[0]
    mapped = cohort.astype(np.float64) @ adapter.astype(np.float64)
    mapped /= np.linalg.norm(mapped, axis=1, keepdims=True)
    assert recognizer.cohort.shape == (20, 16) and recognizer.cohort.dtype == np.float64
    np.testing.assert_allclose(recognizer.cohort, mapped, atol=1e-5)


@pytest.mark.slow
def test_score_shape_and_entries(saved_model):
    _, _, recognizer, _ = saved_model
    q = recognizer.embed(_crops(3, 112, 3))  # 112 crops are resized to the input size
    g = recognizer.embed(_crops(5, 112, 4))
    assert q.shape == (3, recognizer.embedding_dim) and q.dtype == np.float32
    scores = recognizer.score(q, g)
    assert scores.shape == (3, 5) and scores.dtype == np.float64
    assert np.all((scores >= -1 - 1e-9) & (scores <= 1 + 1e-9))
    for i in range(3):
        for j in range(5):
            assert scores[i, j] == pytest.approx(recognizer.score_pair(q[i], g[j]), abs=1e-6)
    assert recognizer.score(q[0], g).shape == (1, 5)  # a single [d] query
    assert recognizer.score(q, np.zeros((0, q.shape[1]), np.float32)).shape == (3, 0)
    assert recognizer.embed(np.zeros((0, 112, 112, 3), np.uint8)).shape == (0, recognizer.embedding_dim)
    assert recognizer.embed([]).shape == (0, recognizer.embedding_dim)


@pytest.mark.slow
def test_save_load_round_trip(saved_model):
    from model.core.recognizer import file_version, load_recognizer, sidecar_path

    siamese, path, recognizer, _ = saved_model
    card = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
    assert card["match_rule"]["name_threshold"] == 3.5 and "saved_at" in card
    assert recognizer.trained and recognizer.architecture == "student"
    assert recognizer.version == file_version(path) and recognizer.path == path
    again = load_recognizer(path)
    crops = _crops(4, recognizer.input_size, 5)
    np.testing.assert_allclose(again.embed(crops), recognizer.embed(crops), atol=1e-6)
    assert not list(path.parent.glob(".tmp-*"))  # atomic save leaves no temporary files


@pytest.mark.slow
def test_bad_model_files_are_model_errors(tmp_path):
    from model.core.recognizer import load_recognizer
    from model.errors import ModelError

    with pytest.raises(ModelError):
        load_recognizer(tmp_path / "missing.keras")
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a zip")
    with pytest.raises(ModelError):
        load_recognizer(broken)


@pytest.mark.slow
def test_untrained_recognizer_is_labelled_and_stable(tmp_path):
    from model.core.recognizer import untrained_recognizer

    first = untrained_recognizer()
    assert not first.trained and "untrained" in first.label and "untrained" in first.version
    crops = _crops(2, 112, 6)
    np.testing.assert_allclose(untrained_recognizer().embed(crops), first.embed(crops), atol=1e-5)


@pytest.mark.slow
def test_a_crash_while_saving_leaves_the_working_model_intact(saved_model):
    """Training or fine-tuning that dies mid-save must not damage the model in use."""
    from model.core.recognizer import file_version, load_recognizer, save_recognizer, sidecar_path

    siamese, path, _, _ = saved_model
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
