"""The MetaCleaner layer: Noisy Weighting followed by Clean Hallucinating."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_metacleaner.layers.weighting import (
    DEFAULT_WEIGHTING,
    PACKAGE,
    Weighting,
    _is_int,
    get_weighting,
)


@keras.saving.register_keras_serializable(package=PACKAGE)
class MetaCleaner(keras.layers.Layer):
    """Hallucinates one clean feature per subset: `v_c = Σ α_i v_i / Σ α_i` (Eq. 3).

    Takes the backbone features of K subsets of N images that share a noisy
    label, gives each image a confidence `α` with a Noisy Weighting function
    (Eq. 2) and returns the α-weighted mean of each subset.

    Args:
        subset_size: int >= 1. N, the number of images in a subset.
        weighting: name of a Noisy Weighting (see
            `keras_metacleaner.layers.WEIGHTINGS`; the paper's is
            `"fc_fc_relu_sig"`) or a `Weighting` layer.
        hidden_units: int. Hidden width of the weighting (384 for Food-101N,
            512 for Clothing1M in the paper).
        return_weights: bool. Also return `α`.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        features: `[K, N, D]` features of K subsets.
        class_scores: optional `[K, N]` log-probability of each subset's label
            for each member, read by weightings with `uses_class_scores`.

    Returns:
        `[K, D]` hallucinated features, and `α: [K, N]` when `return_weights`.

    Example:

    >>> cleaner = MetaCleaner(subset_size=4, weighting="constant", return_weights=True)
    >>> clean, alpha = cleaner(keras.random.normal((8, 4, 16)))
    >>> tuple(clean.shape), tuple(alpha.shape)
    ((8, 16), (8, 4))
    """

    def __init__(
        self,
        subset_size: int,
        weighting: str | Weighting = DEFAULT_WEIGHTING,
        hidden_units: int = 384,
        return_weights: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not _is_int(subset_size) or subset_size < 1:
            raise ValueError(f"`subset_size` must be an integer >= 1, got {subset_size!r}.")
        if not _is_int(hidden_units) or hidden_units < 1:
            raise ValueError(f"`hidden_units` must be >= 1, got {hidden_units!r}.")
        self.subset_size = int(subset_size)
        self.hidden_units = int(hidden_units)
        self.return_weights = bool(return_weights)
        self.weighting = get_weighting(weighting, subset_size, hidden_units)

    @property
    def alpha_min(self) -> float:
        """The lowest α the weighting allows; α stuck there is a dead weighting."""
        return float(self.weighting.alpha_min)

    def _check_shape(self, shape):
        if len(shape) != 3:
            raise ValueError(
                "MetaCleaner expects features of shape [K, N, D] (rank 3), "
                f"got shape {tuple(shape)}."
            )
        if shape[1] is not None and shape[1] != self.subset_size:
            raise ValueError(
                f"MetaCleaner was built for subsets of subset_size={self.subset_size} images, "
                f"got features with N={shape[1]} (shape {tuple(shape)})."
            )

    def build(self, input_shape: tuple) -> None:
        self._check_shape(input_shape)
        # A weighting restored by `deserialize_keras_object` arrives already
        # built from its build_config; building it twice adds its weights twice.
        if not self.weighting.built:
            self.weighting.build(input_shape)

    def call(self, features, class_scores=None):
        self._check_shape(features.shape)
        alpha = self.weighting(features, class_scores)
        weights = ops.cast(alpha, features.dtype)
        # Normalising by Σα (Eq. 3) rather than N keeps v_c on the scale of a
        # single feature whatever the weighting's range.
        total = ops.sum(weights, axis=1, keepdims=True)
        # Every α of a subset at 0 (a floor of 0 with confidences that
        # underflow, easily in float16) would give 0/0: use the plain mean.
        alive = total > 0
        weights = ops.where(alive, weights, ops.ones_like(weights))
        total = ops.where(alive, total, ops.cast(ops.shape(weights)[1], weights.dtype))
        clean = ops.sum(features * weights[..., None], axis=1) / total
        return (clean, alpha) if self.return_weights else clean

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        clean = (input_shape[0], input_shape[2])
        return (clean, (input_shape[0], input_shape[1])) if self.return_weights else clean

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "subset_size": self.subset_size,
                "weighting": keras.saving.serialize_keras_object(self.weighting),
                "hidden_units": self.hidden_units,
                "return_weights": self.return_weights,
            }
        )
        return config

    @classmethod
    def from_config(cls, config: dict) -> MetaCleaner:
        config = dict(config)
        config["weighting"] = keras.saving.deserialize_keras_object(config["weighting"])
        return cls(**config)
