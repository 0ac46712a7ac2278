"""The paper's Noisy Weighting: FC layers on the concatenated subset (Table 2, III)."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_metacleaner.layers.weighting.base import PACKAGE, Weighting


@keras.saving.register_keras_serializable(package=PACKAGE)
class DenseWeighting(Weighting):
    """FC layers on the concatenated subset, then a sigmoid (Table 2, III).

    `[v_1 … v_N]` (N·D) → FC(hidden_units) → [ReLU] → FC(N) → [ReLU] → sigmoid.
    With the ReLU before the sigmoid, α lies in [0.5, 1] (the paper's default,
    `fc_fc_relu_sig`); a unit whose pre-activation goes negative gets no
    gradient, which is how this variant dies (α ≡ 0.5). Because the first FC
    layer sees positions, `MetaCleanerModel` shuffles every subset each step
    (section 3.3).

    Args:
        subset_size: int. N.
        hidden_units: int. Width of the first FC layer (384 or 512 in the paper).
        hidden_relu: bool. ReLU after the first FC layer.
        output_relu: bool. ReLU after the second FC layer.
        **kwargs: passed to `keras.layers.Layer`.

    Example:

    >>> w = DenseWeighting(subset_size=4, hidden_units=16, output_relu=True)
    >>> alpha = w(keras.random.normal((2, 4, 8)))
    >>> bool(keras.ops.all(alpha >= 0.5))
    True
    """

    def __init__(
        self,
        subset_size: int,
        hidden_units: int = 384,
        hidden_relu: bool = False,
        output_relu: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(subset_size, hidden_units, **kwargs)
        self.hidden_relu = bool(hidden_relu)
        self.output_relu = bool(output_relu)
        self.alpha_min = 0.5 if self.output_relu else 0.0
        self.hidden = keras.layers.Dense(hidden_units, name="hidden")
        self.output_dense = keras.layers.Dense(subset_size, name="output")

    def build(self, input_shape: tuple) -> None:
        flat = input_shape[1] * input_shape[2] if None not in input_shape[1:] else None
        self.hidden.build((input_shape[0], flat))
        self.output_dense.build((input_shape[0], self.hidden_units))

    def _relu(self, x):
        return ops.relu(x)

    def _features_in(self, features):
        """The features the FC layers read (a hook for the experimental variants)."""
        return features

    def _gate(self, logits):
        return ops.sigmoid(logits)

    def call(self, features, class_scores=None):
        features = self._features_in(features)
        shape = ops.shape(features)
        hidden = self.hidden(ops.reshape(features, (shape[0], shape[1] * shape[2])))
        if self.hidden_relu:
            hidden = self._relu(hidden)
        logits = self.output_dense(hidden)
        if self.output_relu:
            logits = self._relu(logits)
        return self._gate(logits)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"hidden_relu": self.hidden_relu, "output_relu": self.output_relu})
        return config

    @classmethod
    def from_config(cls, config: dict) -> DenseWeighting:
        if cls is not DenseWeighting:
            return cls(**config)
        # Files saved before the collapse remedies left this class carry their
        # options: at their defaults this is the paper's layer, otherwise the
        # experimental class that still implements them.
        config = dict(config)
        remedies = {key: config.pop(key) for key in _DENSE_REMEDIES if key in config}
        if any(value != _DENSE_REMEDIES[key] for key, value in remedies.items()):
            from keras_metacleaner.experimental.dense import RemedyDenseWeighting

            return RemedyDenseWeighting(**config, **remedies)
        return cls(**config)


#: Options `DenseWeighting` had before they moved to
#: `keras_metacleaner.experimental.RemedyDenseWeighting`, with their defaults.
_DENSE_REMEDIES = {
    "negative_slope": 0.0,
    "output_bias": 0.0,
    "normalize_inputs": False,
    "stop_input_gradient": False,
    "temperature": 1.0,
}
