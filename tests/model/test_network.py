"""The networks: the saved-model contract, save/reload round trips, the custom layers."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def _faces(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype(np.float32)


@pytest.mark.parametrize("architecture", ["compact", "koch"])
def test_save_reload_gives_identical_outputs(architecture, tmp_path):
    import keras

    from model.core import network

    keras.utils.set_random_seed(0)
    siamese = network.build_siamese(network.build_embedding(architecture))
    assert siamese.name == "siamese"
    assert siamese.get_layer("head").units == 1
    assert isinstance(siamese.get_layer("l1_distance"), network.L1Distance)
    size = network.INPUT_SIZES[architecture]
    a, b = _faces(3, size, 1), _faces(3, size, 2)
    before = np.asarray(siamese([a, b], training=False))
    emb_before = np.asarray(siamese.get_layer("embedding")(a, training=False))
    path = tmp_path / f"{architecture}.keras"
    siamese.save(path)
    reloaded = keras.saving.load_model(path, compile=False)
    np.testing.assert_allclose(np.asarray(reloaded([a, b], training=False)), before, atol=1e-6)
    np.testing.assert_allclose(np.asarray(reloaded.get_layer("embedding")(a, training=False)),
                               emb_before, atol=1e-6)


def test_compact_is_small_normalised_and_mirror_invariant():
    from model.core import network

    embedding = network.build_embedding("compact")
    assert embedding.name == "embedding"
    assert embedding.get_layer("backbone").count_params() < 3_000_000
    x = _faces(4, network.INPUT_SIZES["compact"])
    e = np.asarray(embedding(x, training=False))
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-4)
    # Flip fusion: a face and its mirror image get the same embedding.
    mirrored = np.asarray(embedding(x[:, :, ::-1, :].copy(), training=False))
    np.testing.assert_allclose(mirrored, e, atol=1e-5)


def test_cosface_subtracts_the_margin_from_the_true_class_only():
    from model.core.network import CosFaceLogits

    layer = CosFaceLogits(5, scale=10.0, margin=0.25)
    x = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
    labels = np.array([0, 3, 4], dtype=np.int32)
    with_margin = np.asarray(layer(x, labels))
    layer.margin = 0.0
    plain = np.asarray(layer(x, labels))
    diff = plain - with_margin
    expected = np.zeros((3, 5))
    expected[np.arange(3), labels] = 10.0 * 0.25
    np.testing.assert_allclose(diff, expected, atol=1e-5)
    assert np.all(np.abs(plain) <= 10.0 + 1e-4)  # scaled cosines


def test_resize_faces_shapes():
    from model.core.network import resize_faces

    crops = np.zeros((2, 112, 112, 3), np.uint8)
    assert resize_faces(crops, 64).shape == (2, 64, 64, 3)
    assert resize_faces(crops, 64).dtype == np.float32
    assert resize_faces(crops[:0], 64).shape == (0, 64, 64, 3)
    assert resize_faces(crops[0], 32).shape == (1, 32, 32, 3)
