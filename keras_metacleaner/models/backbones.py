"""Backbones: image (raw pixels, 0-255) -> feature vector, preprocessing included.

Every backbone here takes raw pixel values in [0, 255] and carries its own
normalisation as layers, so the trained network (and the SavedModel exported
from it) needs no preprocessing outside the graph.
"""

from __future__ import annotations

import os
from typing import Any

import keras
from keras import layers, ops

from keras_metacleaner.layers.weighting import PACKAGE

# ImageNet channel means (BGR) used by keras.applications.resnet50 ("caffe" mode).
_CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package=PACKAGE)
class CaffePreprocessing(layers.Layer):
    """RGB [0, 255] -> BGR minus the ImageNet mean, as ResNet50's weights expect.

    Grayscale input (one channel) is repeated to three channels first.

    Example:

    >>> tuple(CaffePreprocessing()(keras.ops.zeros((1, 2, 2, 1))).shape)
    (1, 2, 2, 3)
    """

    def call(self, images):
        images = ops.cast(images, self.compute_dtype)
        if images.shape[-1] == 1:
            images = ops.repeat(images, 3, axis=-1)
        bgr = ops.flip(images, axis=-1)
        return bgr - ops.convert_to_tensor(_CAFFE_BGR_MEAN, dtype=self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 3)


def small_cnn(
    input_shape: tuple[int, int, int] = (28, 28, 1), feature_dim: int = 128, name: str = "small_cnn"
) -> keras.Model:
    """Conv32-pool-Conv64-pool-Dense: a CPU-sized backbone for MNIST-like data.

    Args:
        input_shape: `(H, W, C)` of the raw images.
        feature_dim: size of the feature vector.
        name: model name.

    Returns:
        A `keras.Model` mapping `[B, H, W, C]` pixels in [0, 255] to `[B, feature_dim]`.

    Example:

    >>> small_cnn((28, 28, 1)).output_shape
    (None, 128)
    """
    inputs = keras.Input(input_shape, name="images")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    x = layers.Conv2D(32, 3, activation="relu", padding="same", name="conv1")(x)
    x = layers.MaxPooling2D(name="pool1")(x)
    x = layers.Conv2D(64, 3, activation="relu", padding="same", name="conv2")(x)
    x = layers.MaxPooling2D(name="pool2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(feature_dim, activation="relu", name="features")(x)
    return keras.Model(inputs, x, name=name)


def resnet50(
    input_shape: tuple[int, int, int] = (224, 224, 3),
    weights: str | None = None,
    name: str = "resnet50",
) -> keras.Model:
    """ResNet50 with global average pooling: 2048-d features (the paper's backbone).

    Args:
        input_shape: `(H, W, C)`; C may be 1 (repeated to 3).
        weights: `None`, `"imagenet"` (needs a download, or the file already in
            the keras cache) or the path of a local `.h5` / `.weights.h5` file
            of ResNet50 without its top.
        name: model name.

    Returns:
        A `keras.Model` mapping pixels in [0, 255] to `[B, 2048]`.

    Example:

    >>> resnet50((32, 32, 3)).output_shape
    (None, 2048)
    """
    local_file = None
    if weights not in (None, "imagenet"):
        local_file = os.fspath(weights)
        if not os.path.isfile(local_file):
            raise FileNotFoundError(
                f"backbone weights file {local_file!r} does not exist; pass None, 'imagenet' or "
                "the path of a ResNet50 (include_top=False) weights file."
            )
    inputs = keras.Input(input_shape, name="images")
    x = CaffePreprocessing(name="preprocess")(inputs)
    net = keras.applications.ResNet50(
        include_top=False,
        weights="imagenet" if weights == "imagenet" else None,
        input_shape=(*input_shape[:2], 3),
        pooling="avg",
    )
    if local_file:
        net.load_weights(local_file)
    return keras.Model(inputs, net(x), name=name)


def _wide_block(x: Any, filters: int, stride: int, dropout: float, prefix: str) -> Any:
    shortcut = x
    out = layers.BatchNormalization(name=f"{prefix}_bn1")(x)
    out = layers.ReLU(name=f"{prefix}_relu1")(out)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(
            filters, 1, strides=stride, use_bias=False, name=f"{prefix}_short"
        )(out)
    out = layers.Conv2D(
        filters, 3, strides=stride, padding="same", use_bias=False, name=f"{prefix}_conv1"
    )(out)
    out = layers.BatchNormalization(name=f"{prefix}_bn2")(out)
    out = layers.ReLU(name=f"{prefix}_relu2")(out)
    if dropout:
        out = layers.Dropout(dropout, name=f"{prefix}_drop")(out)
    out = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{prefix}_conv2")(out)
    return layers.Add(name=f"{prefix}_add")([out, shortcut])


def wide_resnet(
    input_shape: tuple[int, int, int] = (32, 32, 3),
    depth: int = 28,
    width: int = 10,
    dropout: float = 0.3,
    name: str = "wrn",
) -> keras.Model:
    """WideResNet-depth-width (Zagoruyko & Komodakis), the paper's CIFAR-10 backbone.

    Args:
        input_shape: `(H, W, C)`.
        depth: 6n + 4 (28 for WRN-28-10).
        width: widening factor.
        dropout: dropout between the convolutions of a block (0.3 in the paper).
        name: model name.

    Returns:
        A `keras.Model` mapping pixels in [0, 255] to `[B, 64 * width]`.

    Example:

    >>> wide_resnet((8, 8, 3), depth=10, width=1).output_shape
    (None, 64)
    """
    if (depth - 4) % 6:
        raise ValueError(f"WideResNet depth must be 6n + 4, got {depth}.")
    blocks = (depth - 4) // 6
    inputs = keras.Input(input_shape, name="images")
    # Per-pixel standardisation with CIFAR-scale constants keeps inputs ~N(0, 1).
    x = layers.Rescaling(1.0 / 63.0, offset=-2.0, name="rescale")(inputs)
    x = layers.Conv2D(16, 3, padding="same", use_bias=False, name="stem")(x)
    for stage, filters in enumerate((16 * width, 32 * width, 64 * width)):
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            x = _wide_block(x, filters, stride, dropout, f"s{stage}b{block}")
    x = layers.BatchNormalization(name="final_bn")(x)
    x = layers.ReLU(name="final_relu")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, x, name=name)


BACKBONES = {"small_cnn": small_cnn, "resnet50": resnet50, "wide_resnet_28_10": wide_resnet}


def get_backbone(
    name: str, input_shape: tuple[int, int, int], weights: str | None = None, dropout: float = 0.3
) -> keras.Model:
    """Builds a backbone by name.

    Args:
        name: `"small_cnn"`, `"resnet50"` or `"wide_resnet_28_10"`.
        input_shape: `(H, W, C)` of the raw images.
        weights: ResNet50 only: `None`, `"imagenet"` or a local weights file.
        dropout: WideResNet only: dropout inside each block.

    Returns:
        A `keras.Model` from pixels in [0, 255] to a feature vector.

    Example:

    >>> get_backbone("small_cnn", (28, 28, 1)).output_shape
    (None, 128)
    """
    if name not in BACKBONES:
        raise ValueError(f"Unknown backbone {name!r}; expected one of {sorted(BACKBONES)}.")
    if weights is not None and name != "resnet50":
        raise ValueError(f"Backbone {name!r} has no pretrained weights; got weights={weights!r}.")
    if name == "resnet50":
        return resnet50(input_shape, weights=weights)
    if name == "wide_resnet_28_10":
        return wide_resnet(input_shape, depth=28, width=10, dropout=dropout)
    return small_cnn(input_shape)
