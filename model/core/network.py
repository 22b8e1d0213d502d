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

import cv2
import keras
import numpy as np
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


def build_compact_backbone(input_size: int = 64, dim: int = 128, width: int = 32) -> keras.Model:
    """Our CPU network: a small residual depthwise-separable CNN, L2-normalised output.

    Built as two nested sub-models, ``lower`` (pixels -> 8 x 8 feature map) and
    ``upper`` (feature map -> embedding), so fine-tuning can freeze ``lower``, cache
    its outputs once and train only ``upper``. ``build_compact_embedding`` wraps it.
    """
    inputs = keras.Input((input_size, input_size, 3), name="face")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)
    x = _conv_bn(x, width, 3, strides=2)                      # 32x32
    x = _dw_block(x, width)
    x = _dw_block(x, width * 2, strides=2)                    # 16x16
    x = _dw_block(x, width * 2)
    x = _dw_block(x, width * 4, strides=2)                    # 8x8
    x = _dw_block(x, width * 4)
    lower = keras.Model(inputs, x, name="lower")

    features = keras.Input(tuple(x.shape[1:]), name="features")
    x = _dw_block(features, width * 4)
    x = _dw_block(x, width * 8, strides=2)                    # 4x4
    x = _dw_block(x, width * 8)
    # Keep the spatial layout (a face is not translation-invariant after alignment):
    # a per-position depthwise kernel (MobileFaceNet's GDC) rather than average pooling.
    x = layers.DepthwiseConv2D(x.shape[1], padding="valid", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.2)(x)
    x = layers.Dense(dim, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = L2Normalize(name="l2_normalize")(x)
    upper = keras.Model(features, x, name="upper")

    face = keras.Input((input_size, input_size, 3), name="face")
    return keras.Model(face, upper(lower(face)), name="backbone")


@keras.saving.register_keras_serializable(package="faceatt")
class HorizontalFlip(layers.Layer):
    """Mirror an image batch left-right (axis 2 of ``[n, h, w, c]``)."""

    def call(self, x: Any) -> Any:
        return ops.flip(x, axis=2)


def build_compact_embedding(input_size: int = 64, dim: int = 128, width: int = 32,
                            backbone: keras.Model | None = None) -> keras.Model:
    """The compact embedding: backbone(face) + backbone(mirrored face), L2-normalised.

    Averaging a face with its mirror image ("flip fusion") is a standard, free-of-training
    gain in face verification (about +0.5-1 point on LFW); it doubles the compute.
    Pass a trained ``backbone`` to wrap it; otherwise a fresh one is built.
    """
    backbone = backbone or build_compact_backbone(input_size, dim, width)
    size = backbone.input_shape[1]
    inputs = keras.Input((size, size, 3), name="face")
    fused = layers.Add(name="flip_fusion")([backbone(inputs), backbone(HorizontalFlip()(inputs))])
    outputs = L2Normalize(name="embedding_l2")(fused)
    return keras.Model(inputs, outputs, name="embedding")


@keras.saving.register_keras_serializable(package="faceatt")
class CosFaceLogits(layers.Layer):
    """Large-margin cosine logits (CosFace, Wang et al. 2018) for training only.

    ``call(embeddings, labels)`` returns ``scale * (cos(theta_j) - margin * [j == label])``
    where ``theta_j`` is the angle between the (normalised) embedding and class ``j``'s
    (normalised) weight. Feed the result to a softmax cross-entropy. Larger ``margin``
    forces tighter identity clusters (harder to fit); ``scale`` sets the softmax sharpness.
    """

    def __init__(self, num_classes: int, scale: float = 30.0, margin: float = 0.30,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.scale = scale
        self.margin = margin

    def build(self, embeddings_shape: Any, labels_shape: Any = None) -> None:
        self.kernel = self.add_weight(name="kernel", shape=(embeddings_shape[-1], self.num_classes),
                                      initializer="glorot_uniform")

    def call(self, embeddings: Any, labels: Any) -> Any:
        x = embeddings / ops.sqrt(ops.sum(ops.square(embeddings), axis=-1, keepdims=True) + 1e-6)
        w = self.kernel / ops.sqrt(ops.sum(ops.square(self.kernel), axis=0, keepdims=True) + 1e-6)
        cosine = ops.matmul(x, w)
        onehot = ops.one_hot(ops.reshape(ops.cast(labels, "int32"), (-1,)), self.num_classes)
        return self.scale * (cosine - self.margin * onehot)

    def compute_output_shape(self, embeddings_shape: Any, labels_shape: Any = None) -> Any:
        return (embeddings_shape[0], self.num_classes)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_classes": self.num_classes,
                "scale": self.scale, "margin": self.margin}


@keras.saving.register_keras_serializable(package="faceatt")
class CosineSimilarity(layers.Layer):
    """Cosine of two (unit) embeddings, ``[n, 1]``: the unsquashed Siamese score."""

    def call(self, a: Any, b: Any) -> Any:
        return ops.sum(a * b, axis=-1, keepdims=True)

    def compute_output_shape(self, a_shape: Any, b_shape: Any) -> Any:
        return (a_shape[0], 1)


@keras.saving.register_keras_serializable(package="faceatt")
class Cohort(layers.Layer):
    """Holds a fixed matrix of cohort embeddings inside the saved model (not trained).

    The cohort (faces of LFW DevTrain people, in the *base* embedding space, before the
    adapter) is the "other people" that scores are normalised against; keeping it in the
    ``.keras`` file means it is saved, loaded and deleted with the model as one unit.
    ``call(x)`` returns ``x`` unchanged (the layer only carries the weight).
    """

    def __init__(self, size: int = 0, dim: int = 128, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.size = size
        self.dim = dim
        self.matrix = self.add_weight(name="matrix", shape=(size, dim), initializer="zeros",
                                      trainable=False)

    def call(self, x: Any) -> Any:
        return x

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "size": self.size, "dim": self.dim}


def build_student_embedding(backbone: keras.Model) -> keras.Model:
    """The distilled embedding: ``L2(adapter(backbone(face)))``, named ``embedding``.

    ``adapter`` is a square linear map that starts as the identity (the base model is
    exactly the distilled backbone). Fine-tuning on a class trains only the adapter, so
    the cohort stored in the base space can be mapped into the fine-tuned space.
    """
    size = backbone.input_shape[1]
    dim = int(backbone.outputs[0].shape[-1])
    face = keras.Input((size, size, 3), name="face")
    adapter = layers.Dense(dim, use_bias=False, kernel_initializer="identity", name="adapter")
    outputs = L2Normalize(name="embedding_l2")(adapter(backbone(face)))
    return keras.Model(face, outputs, name="embedding")


def build_cosine_siamese(embedding: keras.Model, cohort: np.ndarray | None = None) -> keras.Model:
    """Siamese model with a cosine head: ``head = sigmoid(a * cos(e_a, e_b) + b)``.

    The decision scores are the cosine itself (float64 in ``Recognizer``); ``head`` is
    only the calibrated probability that two faces match. ``cohort`` (``[c, d]``) is
    carried in the ``cohort`` layer.
    """
    size = embedding.input_shape[1]
    dim = int(embedding.outputs[0].shape[-1])
    cohort = np.zeros((0, dim), np.float32) if cohort is None else np.asarray(cohort, np.float32)
    face_a = keras.Input((size, size, 3), name="face_a")
    face_b = keras.Input((size, size, 3), name="face_b")
    holder = Cohort(len(cohort), dim, name="cohort")
    cosine = CosineSimilarity(name="cosine")(holder(embedding(face_a)), embedding(face_b))
    score = layers.Dense(1, activation="sigmoid", name="head")(cosine)
    model = keras.Model([face_a, face_b], score, name="siamese")
    holder.matrix.assign(cohort)
    return model


def build_embedding(architecture: str = DEFAULT_ARCHITECTURE) -> keras.Model:
    """A fresh (untrained) embedding tower named ``embedding`` for ``architecture``."""
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


def resize_faces(crops: np.ndarray, size: int) -> np.ndarray:
    """Aligned crops (uint8 [n, 112, 112, 3]) -> network input (float32 [n, size, size, 3], 0..255).

    Area interpolation, the same for training, evaluation and the app, so a network
    sees the same pixels everywhere.
    """
    crops = np.asarray(crops)
    if crops.ndim == 3:
        crops = crops[None]
    if crops.shape[0] == 0:
        return np.zeros((0, size, size, 3), dtype=np.float32)
    if crops.shape[1] == size and crops.shape[2] == size:
        return crops.astype(np.float32)
    out = np.empty((crops.shape[0], size, size, 3), dtype=np.float32)
    for i, crop in enumerate(crops):
        out[i] = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    return out


def input_size_of(model: keras.Model) -> int:
    """Side in pixels of the square input of a siamese or embedding model."""
    shape = model.inputs[0].shape
    return int(shape[1])
