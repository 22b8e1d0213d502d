"""The Siamese network: embedding towers, the L1 + sigmoid head, registered layers.

A saved model is one Keras ``Model`` named ``siamese`` with two inputs (two face
crops, ``S x S x 3`` float32 RGB in 0..255) and one output (the probability that
they show the same person). Inside it:

- layer ``embedding``: a sub-model ``(S, S, 3) -> (d,)`` shared by both inputs;
- layer ``l1_distance``: ``|e_a - e_b|`` (``L1Distance``);
- layer ``head``: ``Dense(1, sigmoid)`` on that distance (the seed design).

Custom layers are registered classes (never ``Lambda``) so ``.keras`` files reload.
Written with ``keras.ops`` only, so the same code trains under the JAX backend.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers, ops

ARCHITECTURES = ("compact", "koch")
DEFAULT_ARCHITECTURE = "compact"
#: Input side (pixels) of each architecture.
INPUT_SIZES = {"compact": 64, "koch": 100}


@keras.saving.register_keras_serializable(package="faceatt")
class L1Distance(layers.Layer):
    """Element-wise absolute difference of two embeddings: ``|a - b|``."""

    def call(self, a: Any, b: Any) -> Any:
        return ops.abs(a - b)

    def compute_output_shape(self, a_shape: Any, b_shape: Any) -> Any:
        return a_shape


@keras.saving.register_keras_serializable(package="faceatt")
class L2Normalize(layers.Layer):
    """Scale each embedding to unit length, so distances compare directions only."""

    def __init__(self, epsilon: float = 1e-6, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def call(self, x: Any) -> Any:
        norm = ops.sqrt(ops.sum(ops.square(x), axis=-1, keepdims=True) + self.epsilon)
        return x / norm

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "epsilon": self.epsilon}


def build_koch_embedding(input_size: int = 100) -> keras.Model:
    """The seed design (Koch et al. 2015 as used in the seed notebook), kept faithful."""
    inputs = keras.Input((input_size, input_size, 3), name="face")
    x = layers.Rescaling(1.0 / 255.0)(inputs)
    x = layers.Conv2D(64, 10, activation="relu")(x)
    x = layers.MaxPooling2D(2, padding="same")(x)
    x = layers.Conv2D(128, 7, activation="relu")(x)
    x = layers.MaxPooling2D(2, padding="same")(x)
    x = layers.Conv2D(128, 4, activation="relu")(x)
    x = layers.MaxPooling2D(2, padding="same")(x)
    x = layers.Conv2D(256, 4, activation="relu")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(4096, activation="sigmoid")(x)
    return keras.Model(inputs, x, name="embedding")


def _conv_bn(x: Any, filters: int, kernel: int = 3, strides: int = 1) -> Any:
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU()(x)


def _dw_block(x: Any, filters: int, strides: int = 1) -> Any:
    """Depthwise-separable block (MobileNet style) with a residual when shapes match."""
    shortcut = x
    y = layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False)(x)
    y = layers.BatchNormalization()(y)
    y = layers.ReLU()(y)
    y = layers.Conv2D(filters, 1, use_bias=False)(y)
    y = layers.BatchNormalization()(y)
    if strides == 1 and shortcut.shape[-1] == filters:
        y = layers.Add()([shortcut, y])
    return layers.ReLU()(y)


def build_compact_embedding(input_size: int = 64, dim: int = 128, width: int = 32) -> keras.Model:
    """Our CPU network: a small residual depthwise-separable CNN, L2-normalised output."""
    inputs = keras.Input((input_size, input_size, 3), name="face")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)
    x = _conv_bn(x, width, 3, strides=2)                      # 32x32
    x = _dw_block(x, width)
    x = _dw_block(x, width * 2, strides=2)                    # 16x16
    x = _dw_block(x, width * 2)
    x = _dw_block(x, width * 4, strides=2)                    # 8x8
    x = _dw_block(x, width * 4)
    x = _dw_block(x, width * 4)
    x = _dw_block(x, width * 8, strides=2)                    # 4x4
    x = _dw_block(x, width * 8)
    # Keep the spatial layout (a face is not translation-invariant after alignment):
    # flatten rather than global-average-pool, as MobileFaceNet's GDC layer does.
    x = layers.DepthwiseConv2D(x.shape[1], padding="valid", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.2)(x)
    x = layers.Dense(dim, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = L2Normalize(name="l2_normalize")(x)
    return keras.Model(inputs, x, name="embedding")


def build_embedding(architecture: str = DEFAULT_ARCHITECTURE) -> keras.Model:
    if architecture == "koch":
        return build_koch_embedding(INPUT_SIZES["koch"])
    if architecture == "compact":
        return build_compact_embedding(INPUT_SIZES["compact"])
    raise ValueError(f"unknown architecture {architecture!r}; choose from {ARCHITECTURES}")


def build_siamese(embedding: keras.Model) -> keras.Model:
    """Wrap an embedding tower in the seed's Siamese head: L1 distance, then Dense(1, sigmoid)."""
    size = embedding.input_shape[1]
    face_a = keras.Input((size, size, 3), name="face_a")
    face_b = keras.Input((size, size, 3), name="face_b")
    distance = L1Distance(name="l1_distance")(embedding(face_a), embedding(face_b))
    score = layers.Dense(1, activation="sigmoid", name="head")(distance)
    return keras.Model([face_a, face_b], score, name="siamese")
