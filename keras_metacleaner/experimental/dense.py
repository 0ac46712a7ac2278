"""The paper's FC weighting with the remedies tried against its collapse."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_metacleaner.layers.weighting import PACKAGE, DenseWeighting


def _unit(x):
    return x / (ops.norm(x, axis=-1, keepdims=True) + 1e-6)


@keras.saving.register_keras_serializable(package=PACKAGE)
class RemedyDenseWeighting(DenseWeighting):
    """`DenseWeighting` with options meant to keep its ReLU from closing for good.

    The paper's `fc_fc_relu_sig` can settle at α ≡ 0.5 (every output ReLU
    closed, no gradient left). Each option attacks one cause; their defaults
    give the paper's layer. docs/results.md records what they did (none kept
    the weighting alive and informative).

    Args:
        subset_size: int. N.
        hidden_units: int. Width of the first FC layer.
        hidden_relu: bool. ReLU after the first FC layer.
        output_relu: bool. ReLU after the second FC layer.
        negative_slope: float >= 0. Slope of both ReLUs below zero (leaky
            ReLU): a negative unit still gets a gradient, and α can go below 0.5.
        output_bias: float. Initial bias of the second FC layer: positive
            values start every unit in the ReLU's active region.
        normalize_inputs: bool. L2-normalise each member's feature first, so
            the backbone's feature scale cannot saturate the FC layers.
        stop_input_gradient: bool. No gradient from α into the backbone, so α
            cannot be served by bending the features.
        temperature: float > 0. α = sigmoid(z / temperature).
        **kwargs: passed to `keras.layers.Layer`.

    Example:

    >>> w = RemedyDenseWeighting(subset_size=4, hidden_units=8, output_bias=50.0)
    >>> float(keras.ops.min(w(keras.random.normal((2, 4, 3))))) > 0.99
    True
    """

    def __init__(
        self,
        subset_size: int,
        hidden_units: int = 384,
        hidden_relu: bool = False,
        output_relu: bool = True,
        negative_slope: float = 0.0,
        output_bias: float = 0.0,
        normalize_inputs: bool = False,
        stop_input_gradient: bool = False,
        temperature: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(subset_size, hidden_units, hidden_relu, output_relu, **kwargs)
        if negative_slope < 0:
            raise ValueError(f"`negative_slope` must be >= 0, got {negative_slope}.")
        if temperature <= 0:
            raise ValueError(f"`temperature` must be > 0, got {temperature}.")
        self.negative_slope = float(negative_slope)
        self.output_bias = float(output_bias)
        self.normalize_inputs = bool(normalize_inputs)
        self.stop_input_gradient = bool(stop_input_gradient)
        self.temperature = float(temperature)
        self.alpha_min = 0.5 if self.output_relu and not self.negative_slope else 0.0

    def build(self, input_shape: tuple) -> None:
        super().build(input_shape)
        # The initial output bias (saved weights, when loading, replace it).
        self.output_dense.bias.assign(ops.full((self.subset_size,), self.output_bias))

    def _relu(self, x):
        return ops.leaky_relu(x, self.negative_slope) if self.negative_slope else ops.relu(x)

    def _features_in(self, features):
        if self.stop_input_gradient:
            features = ops.stop_gradient(features)
        return _unit(features) if self.normalize_inputs else features

    def _gate(self, logits):
        return ops.sigmoid(logits / self.temperature)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "negative_slope": self.negative_slope,
            "output_bias": self.output_bias,
            "normalize_inputs": self.normalize_inputs,
            "stop_input_gradient": self.stop_input_gradient,
            "temperature": self.temperature,
        }
