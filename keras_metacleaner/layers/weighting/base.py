"""The base class of the Noisy Weightings, and what every one of them shares."""

from __future__ import annotations

from numbers import Integral
from typing import Any

import keras
from keras import ops

PACKAGE = "keras_metacleaner"


def _is_int(value: object) -> bool:
    """True for Python and NumPy integers (not bools): what a size argument may be."""
    return isinstance(value, Integral) and not isinstance(value, bool)


@keras.saving.register_keras_serializable(package=PACKAGE)
class Weighting(keras.layers.Layer):
    """Base class of the Noisy Weighting functions (Eq. 2 of the paper).

    Subclasses implement `call(features, class_scores=None)` returning `α`
    of shape `[K, N]` and set `alpha_min` / `alpha_max`, the range their α
    is guaranteed to lie in. `alpha_min` is what `alpha_floor` statistics
    compare against: a share of α stuck there means the weighting is dead.

    Args:
        subset_size: int. N, the number of images in one subset.
        hidden_units: int. Width of the hidden layer, where there is one.
        **kwargs: passed to `keras.layers.Layer`.
    """

    alpha_min: float = 0.0
    alpha_max: float = 1.0
    #: True when the weighting reads `class_scores`, the classifier's
    #: log-probability of the subset's label for each member.
    uses_class_scores: bool = False
    #: The losses this weighting is documented and benchmarked with, which
    #: `MetaCleanerModel` uses for options left at `"auto"`: the paper's pure
    #: hallucination (no per-image loss, every subset weighted equally) for
    #: the learned weightings, so that naming one never gives an untested mix.
    default_member_loss_weight: float = 0.0
    default_subset_loss_weights: str | None = None
    #: Epochs of warm-up before the members this weighting distrusts are also
    #: trained towards the network's prediction (`bootstrap_after_epochs`); None: never.
    default_bootstrap_after_epochs: int | None = None
    #: How the α-weighted losses are scaled (`loss_weight_normalization`): None, by α.
    default_loss_weight_normalization: str | None = None

    def __init__(self, subset_size: int, hidden_units: int = 384, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not _is_int(subset_size) or subset_size < 1:
            raise ValueError(f"`subset_size` must be an integer >= 1, got {subset_size!r}.")
        if not _is_int(hidden_units) or hidden_units < 0:
            raise ValueError(f"`hidden_units` must be an integer >= 0, got {hidden_units!r}.")
        self.subset_size = int(subset_size)
        self.hidden_units = int(hidden_units)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape[:2])

    def class_scores(self, log_probs, labels):
        """The `class_scores` this weighting reads, from the classifier.

        Args:
            log_probs: `[K, N, C]` log-softmax of each member's logits.
            labels: `[K]` int, each subset's (noisy) label.

        Returns:
            `[K, N]` log p(label | v_i).
        """
        index = ops.broadcast_to(ops.reshape(labels, (-1, 1, 1)), (*ops.shape(log_probs)[:2], 1))
        return ops.squeeze(ops.take_along_axis(log_probs, index, axis=-1), -1)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"subset_size": self.subset_size, "hidden_units": self.hidden_units})
        return config
