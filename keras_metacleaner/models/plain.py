"""The plain classifier: the baseline every method is compared with."""

from __future__ import annotations

import keras


def plain_classifier(
    backbone: keras.Model, num_classes: int, name: str = "baseline"
) -> keras.Model:
    """backbone -> Dense -> softmax: the baseline, same head as `inference_model()`.

    Trained on single images with any Keras loss, it is the "plain training"
    of the benchmarks, and the classifier the robust losses
    (`keras_metacleaner.losses`) and the peers' models wrap.

    Args:
        backbone: images `[B, H, W, C]` -> features `[B, D]`.
        num_classes: number of classes.
        name: model name.

    Returns:
        A functional `keras.Model`, images -> probabilities (float32 under
        mixed precision too).

    Example:

    >>> from keras_metacleaner.models import small_cnn
    >>> plain_classifier(small_cnn(), 10).output_shape
    (None, 10)
    """
    images = keras.Input(backbone.input_shape[1:], name="images")
    logits = keras.layers.Dense(num_classes, name="classifier")(backbone(images))
    outputs = keras.layers.Activation("softmax", dtype="float32", name="probabilities")(logits)
    return keras.Model(images, outputs, name=name)
