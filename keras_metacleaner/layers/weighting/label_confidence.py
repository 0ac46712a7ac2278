"""α read from the classifier's probability of each member's label."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_metacleaner.layers.weighting.base import PACKAGE, Weighting


class _LabelScoreWeighting(Weighting):
    """Base of the weightings that read the classifier's view of each member's label.

    α_i = floor + (1 - floor)·`_confidence(class_scores)`, through a stopped
    gradient, and α = 1 without `class_scores`. Subclasses define
    `_confidence`; `_label_scores` gives log q_i, with q_i = p(y | v_i),
    divided by max_c p(c | v_i) when `relative`.
    """

    uses_class_scores = True
    # Benchmarked with the α-weighted per-image loss and max-α subset weights
    # (docs/results.md): the default method's losses.
    default_member_loss_weight = 1.0
    default_subset_loss_weights = "max_alpha"

    def __init__(
        self,
        subset_size: int,
        hidden_units: int = 0,
        floor: float = 0.05,
        relative: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(subset_size, hidden_units, **kwargs)
        if not 0.0 <= floor < 1.0:
            raise ValueError(f"`floor` must be in [0, 1), got {floor}.")
        self.floor = float(floor)
        self.relative = bool(relative)
        self.alpha_min = self.floor

    def _label_scores(self, log_probs, labels):
        scores = super().class_scores(log_probs, labels)
        if self.relative:
            scores = scores - ops.max(log_probs, axis=-1)
        return scores

    def _confidence(self, class_scores):
        raise NotImplementedError

    def call(self, features, class_scores=None):
        if class_scores is None:
            return ops.ones(ops.shape(features)[:2], dtype=features.dtype)
        confidence = self._confidence(ops.stop_gradient(ops.cast(class_scores, "float32")))
        return ops.cast(self.floor + (1.0 - self.floor) * confidence, features.dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "floor": self.floor, "relative": self.relative}


@keras.saving.register_keras_serializable(package=PACKAGE)
class LabelConfidenceWeighting(_LabelScoreWeighting):
    """α_i = floor + (1 - floor)·(p(y | v_i) / max_c p(c | v_i))^γ, no gradient.

    The classifier's probability of the subset's (noisy) label for each
    member, relative to its most likely class, read with a stopped gradient:
    the softmax compares v_i with every class prototype (the classifier's
    rows), and a member whose feature the classifier puts in another class
    gets a low weight. Because the classification loss cannot move α (it is
    not a function of trainable weights through any gradient path), it cannot
    push α back to uniform, the way a learned weighting can collapse.
    Early in training every class is about equally likely, so Eq. 3 starts as
    the plain mean; the contrast grows as the classifier learns the clean
    majority of each class, while averaging keeps it from memorising the
    flipped labels.

    Relative to the top class (the default) rather than p(y | v_i) alone: a
    member the classifier already puts in its label's class keeps α = 1
    however unsure the classifier is, so hard but correctly labelled images
    are not turned down with the wrong ones (docs/results.md compares both).

    Needs `class_scores` (`[K, N]`, from `class_scores()`), which
    `MetaCleanerModel` computes; without them it falls back to α = 1.

    Args:
        subset_size: int. N.
        hidden_units: int. Unused; kept for a uniform signature.
        floor: float in [0, 1). The lowest α: wrong-looking members keep a
            little weight (the paper's argument for α ≥ 0.5 on fine-grained
            data).
        gamma: float > 0. Sharpness: α uses p^γ.
        relative: bool. Divide p(y | v_i) by max_c p(c | v_i) (default);
            False reads p(y | v_i) alone.

    Example:

    >>> w = LabelConfidenceWeighting(subset_size=2, floor=0.0, relative=False)
    >>> scores = keras.ops.log(keras.ops.convert_to_tensor([[0.9, 0.1]]))
    >>> [round(float(a), 2) for a in w(keras.ops.ones((1, 2, 3)), scores)[0]]
    [0.9, 0.1]
    """

    def __init__(
        self,
        subset_size: int,
        hidden_units: int = 0,
        floor: float = 0.05,
        gamma: float = 1.0,
        relative: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(subset_size, hidden_units, floor, relative, **kwargs)
        if gamma <= 0:
            raise ValueError(f"`gamma` must be > 0, got {gamma}.")
        self.gamma = float(gamma)

    def class_scores(self, log_probs, labels):
        return self._label_scores(log_probs, labels)

    def _confidence(self, class_scores):
        return ops.exp(self.gamma * class_scores)

    def get_config(self) -> dict:
        return {**super().get_config(), "gamma": self.gamma}
