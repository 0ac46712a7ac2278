"""α from how well a member agrees with the others of its subset (order-equivariant)."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_metacleaner.layers.weighting.base import PACKAGE, Weighting


def _unit(x):
    return x / (ops.norm(x, axis=-1, keepdims=True) + 1e-6)


def _leave_one_out(features):
    """Unit-norm features and the unit-norm mean of the other N-1 members."""
    normalized = _unit(features)
    return normalized, _unit(ops.sum(normalized, axis=1, keepdims=True) - normalized)


@keras.saving.register_keras_serializable(package=PACKAGE)
class AgreementWeighting(Weighting):
    """α_i = sigmoid(τ·cos(v_i, mean of the others) + b + MLP): order-equivariant.

    Each member is scored by how well its L2-normalised feature agrees with
    the mean of the other N-1 members, plus a small shared MLP on
    `[v̂_i, v̂_i ⊙ m̂_-i]`. Unlike an FC on the concatenation, permuting the
    subset permutes α the same way.

    Args:
        subset_size: int. N.
        hidden_units: int. Width of the MLP's hidden layer.
        temperature: float. Initial τ, the weight of the cosine.

    Example:

    >>> w = AgreementWeighting(subset_size=4, hidden_units=16)
    >>> tuple(w(keras.random.normal((2, 4, 8))).shape)
    (2, 4)
    """

    def __init__(
        self, subset_size: int, hidden_units: int = 64, temperature: float = 5.0, **kwargs: Any
    ) -> None:
        super().__init__(subset_size, hidden_units, **kwargs)
        self.temperature = float(temperature)
        self.hidden = keras.layers.Dense(hidden_units, activation="relu", name="hidden")
        self.score = keras.layers.Dense(1, kernel_initializer="zeros", name="score")

    def build(self, input_shape):
        self.hidden.build((*input_shape[:-1], 2 * input_shape[-1]))
        self.score.build((*input_shape[:-1], self.hidden_units))
        self.tau = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(self.temperature), name="tau"
        )
        self.offset = self.add_weight(shape=(), initializer="zeros", name="offset")

    def call(self, features, class_scores=None):
        normalized, others = _leave_one_out(features)
        cosine = ops.sum(normalized * others, axis=-1)
        mlp = self.score(self.hidden(ops.concatenate([normalized, normalized * others], -1)))
        centred = cosine - ops.mean(cosine, axis=1, keepdims=True)
        tau = ops.cast(self.tau, features.dtype)
        offset = ops.cast(self.offset, features.dtype)
        return ops.sigmoid(tau * centred + offset + ops.squeeze(mlp, -1))

    def get_config(self) -> dict:
        return {**super().get_config(), "temperature": self.temperature}
