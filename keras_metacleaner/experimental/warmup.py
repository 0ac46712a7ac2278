"""Hold a weighting at the plain mean for the first epochs."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_metacleaner.layers.weighting import PACKAGE, Weighting, get_weighting


# Registered as "keras_metacleaner>WarmupWeighting", its name while it was
# public, so files saved then still load.
@keras.saving.register_keras_serializable(package=PACKAGE)
class WarmupWeighting(Weighting):
    """Another weighting, held at α = 1 (the plain mean) until switched on.

    α = 1 + on·(α_inner - 1) with `on` a non-trainable 0/1 variable: while it
    is 0 the subset mean is the plain mean and the inner weighting gets no
    gradient; `WeightingWarmup` sets it to 1 after a number of epochs, so a
    learned weighting starts on a trained backbone instead of a random one.

    Args:
        weighting: the `Weighting` to warm up (a name is resolved with
            `get_weighting(weighting, subset_size, hidden_units)`).
        subset_size: int. N.
        hidden_units: int. Passed on when `weighting` is a name.
        **kwargs: passed to `keras.layers.Layer`.

    Example:

    >>> w = WarmupWeighting("fc_fc_relu_sig", subset_size=2, hidden_units=4)
    >>> [float(a) for a in w(keras.ops.ones((1, 2, 3)))[0]]
    [1.0, 1.0]
    """

    def __init__(
        self,
        weighting: str | Weighting | dict,
        subset_size: int,
        hidden_units: int = 384,
        **kwargs: Any,
    ) -> None:
        super().__init__(subset_size, hidden_units, **kwargs)
        if isinstance(weighting, dict):
            weighting = keras.saving.deserialize_keras_object(weighting)
        self.weighting = get_weighting(weighting, subset_size, hidden_units)
        self.uses_class_scores = self.weighting.uses_class_scores
        self.default_member_loss_weight = self.weighting.default_member_loss_weight
        self.default_subset_loss_weights = self.weighting.default_subset_loss_weights
        self.alpha_min = min(float(self.weighting.alpha_min), 1.0)
        self.alpha_max = max(float(self.weighting.alpha_max), 1.0)

    def build(self, input_shape: tuple) -> None:
        if not self.weighting.built:
            self.weighting.build(input_shape)
        self.on = self.add_weight(shape=(), initializer="zeros", trainable=False, name="on")

    def class_scores(self, log_probs, labels):
        return self.weighting.class_scores(log_probs, labels)

    def call(self, features, class_scores=None):
        alpha = self.weighting(features, class_scores)
        return 1.0 + ops.cast(self.on, alpha.dtype) * (alpha - 1.0)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "weighting": keras.saving.serialize_keras_object(self.weighting),
        }


class WeightingWarmup(keras.callbacks.Callback):
    """Switches a `WarmupWeighting` on after `epochs` epochs of the plain mean.

    Args:
        epochs: int >= 0. Epochs trained with α = 1 before the inner
            weighting takes over.

    Example:

    >>> import keras_metacleaner as kmc
    >>> weighting = WarmupWeighting("fc_fc_relu_sig", subset_size=4)
    >>> model = kmc.MetaCleanerModel(kmc.models.small_cnn(), 10, 4, weighting=weighting)
    >>> warmup = WeightingWarmup(epochs=5)  # model.fit(..., callbacks=[warmup])
    """

    def __init__(self, epochs: int) -> None:
        super().__init__()
        if epochs < 0:
            raise ValueError(f"`epochs` must be >= 0, got {epochs}.")
        self.epochs = int(epochs)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        weighting = self.model.cleaner.weighting
        if not isinstance(weighting, WarmupWeighting):
            raise ValueError(
                "WeightingWarmup needs a model whose weighting is a WarmupWeighting; "
                f"this one's is {type(weighting).__name__}."
            )
        weighting.on.assign(1.0 if epoch >= self.epochs else 0.0)
