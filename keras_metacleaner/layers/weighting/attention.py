"""Attention on each member alone (Table 2, II)."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_metacleaner.layers.weighting.base import PACKAGE, Weighting


@keras.saving.register_keras_serializable(package=PACKAGE)
class AttentionWeighting(Weighting):
    """α_i = g(a·tanh(W v_i + b)), g = sigmoid or exp (Table 2, II).

    Scores each member on its own, so it is order-equivariant but blind to
    the other members of the subset.

    Args:
        subset_size: int. N.
        hidden_units: int. Rows of W (384 for Food-101N, 512 for Clothing1M).
        gate: `"sigmoid"` (α in (0, 1)) or `"exp"` (α in (e^-|a|, e^|a|)).

    Example:

    >>> w = AttentionWeighting(subset_size=4, hidden_units=16, gate="exp")
    >>> tuple(w(keras.ops.ones((2, 4, 8))).shape)
    (2, 4)
    """

    def __init__(
        self, subset_size: int, hidden_units: int = 384, gate: str = "sigmoid", **kwargs: Any
    ) -> None:
        super().__init__(subset_size, hidden_units, **kwargs)
        if gate not in ("sigmoid", "exp"):
            raise ValueError(f"`gate` must be 'sigmoid' or 'exp', got {gate!r}.")
        self.gate = gate
        # exp(a·tanh(.)) is unbounded above as `a` learns: no finite alpha_max.
        self.alpha_max = 1.0 if gate == "sigmoid" else float("inf")
        self.projection = keras.layers.Dense(hidden_units, activation="tanh", name="projection")
        self.score = keras.layers.Dense(1, use_bias=False, name="score")

    def build(self, input_shape):
        self.projection.build(input_shape)
        self.score.build((*input_shape[:-1], self.hidden_units))

    def call(self, features, class_scores=None):
        logits = ops.squeeze(self.score(self.projection(features)), axis=-1)
        return ops.sigmoid(logits) if self.gate == "sigmoid" else ops.exp(logits)

    def get_config(self) -> dict:
        return {**super().get_config(), "gate": self.gate}
