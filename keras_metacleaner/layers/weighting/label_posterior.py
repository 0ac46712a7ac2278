"""α = the posterior probability that a member's label is right: the default's weighting."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_metacleaner.layers.global_batch import global_mean
from keras_metacleaner.layers.weighting.base import PACKAGE
from keras_metacleaner.layers.weighting.label_confidence import _LabelScoreWeighting


@keras.saving.register_keras_serializable(package=PACKAGE)
class LabelPosteriorWeighting(_LabelScoreWeighting):
    """α_i = floor + (1 - floor)·P(label is right | v_i), no gradient.

    Reads the classifier like `LabelConfidenceWeighting`, but turns its
    confidence into the posterior probability that the subset's label is the
    member's true class, under label noise whose clean share π is estimated
    from the batch (the share of members the classifier puts in their label's
    class):

        odds_i = π / (1 - π) · m · q_i / (1 - q_i),  α_i ∝ odds_i / (1 + odds_i)

    with `q_i = p(y | v_i) / max_c p(c | v_i)` (or `p(y | v_i)`) and `m`
    the number of classes a wrong label is spread over (C - 1 for symmetric
    noise; 1, pair flips, the default, is the most cautious). On clean data
    π → 1 and every member, hard ones included, keeps α ≈ 1: plain training,
    where `LabelConfidenceWeighting` turns hard correct images down like
    wrong ones. With more noise π drops
    to its lower bound; with m = 1 and π = 0.5, α = q, `LabelConfidenceWeighting`'s
    α, which the default bound makes the harshest this weighting gets.

    Needs `class_scores` (the posterior log-odds, `[K, N]`, from
    `class_scores()`), which `MetaCleanerModel` computes; without them it
    falls back to α = 1.

    Args:
        subset_size: int. N.
        hidden_units: int. Unused; kept for a uniform signature.
        floor: float in [0, 1). The lowest α.
        relative: bool. Read q relative to the top class (default) or
            p(y | v_i) alone.
        clean_prior: float in (0, 1) or None. π; None (default) estimates it
            from each (global) batch, clipped to [min_clean_prior, 0.99].
        min_clean_prior: float in (0, 0.99]. The lowest estimate of π.
            Lower bounds turn members down harder once the classifier
            disagrees with most labels, which can let it lock onto one class
            under heavy noise; 0.5 (default) stops at
            `LabelConfidenceWeighting`'s α.
        flip_classes: int >= 1 or None. m (default 1); None is C - 1.

    Example:

    >>> w = LabelPosteriorWeighting(subset_size=2, floor=0.0, clean_prior=0.5)
    >>> log_probs = keras.ops.log(keras.ops.convert_to_tensor([[[0.5, 0.5], [0.2, 0.8]]]))
    >>> scores = w.class_scores(log_probs, keras.ops.convert_to_tensor([0]))
    >>> [round(float(a), 2) for a in w(keras.ops.ones((1, 2, 3)), scores)[0]]
    [1.0, 0.25]
    """

    # The default method since metacleaner_v2 (docs/results.md, issue 14).
    default_bootstrap_after_epochs = 5
    # Since metacleaner_v3: the α-weighted losses divided by their batch mean.
    default_loss_weight_normalization = "batch"

    #: The highest estimate of the clean share: never trust every label fully.
    max_clean_prior = 0.99

    def __init__(
        self,
        subset_size: int,
        hidden_units: int = 0,
        floor: float = 0.05,
        relative: bool = True,
        clean_prior: float | None = None,
        flip_classes: int | None = 1,
        min_clean_prior: float = 0.5,
        **kwargs: Any,
    ) -> None:
        super().__init__(subset_size, hidden_units, floor, relative, **kwargs)
        if clean_prior is not None and not 0.0 < clean_prior < 1.0:
            raise ValueError(f"`clean_prior` must be in (0, 1) or None, got {clean_prior}.")
        if not 0.0 < min_clean_prior <= self.max_clean_prior:
            raise ValueError(
                f"`min_clean_prior` must be in (0, {self.max_clean_prior}], got {min_clean_prior}."
            )
        if flip_classes is not None and (int(flip_classes) != flip_classes or flip_classes < 1):
            raise ValueError(f"`flip_classes` must be an integer >= 1 or None, got {flip_classes}.")
        self.flip_classes = None if flip_classes is None else int(flip_classes)
        self.clean_prior = None if clean_prior is None else float(clean_prior)
        self.min_clean_prior = float(min_clean_prior)

    def class_scores(self, log_probs, labels):
        log_probs = ops.stop_gradient(ops.cast(log_probs, "float32"))
        score = self._label_scores(log_probs, labels)
        if self.clean_prior is None:
            agrees = ops.argmax(log_probs, axis=-1) == ops.reshape(
                ops.cast(labels, "int32"), (-1, 1)
            )
            prior = ops.clip(
                global_mean(ops.cast(agrees, "float32")),
                self.min_clean_prior,
                self.max_clean_prior,
            )
        else:
            prior = ops.convert_to_tensor(self.clean_prior, "float32")
        # log q - log(1 - q), finite at q = 1 (the top class), where α -> 1.
        score = ops.minimum(score, -1e-6)
        log_odds_label = score - ops.log(-ops.expm1(score))
        if self.flip_classes is None:
            spread = ops.cast(ops.shape(log_probs)[-1] - 1, "float32")
        else:
            spread = ops.convert_to_tensor(float(self.flip_classes), "float32")
        return ops.log(prior) - ops.log(1.0 - prior) + ops.log(spread) + log_odds_label

    def _confidence(self, class_scores):
        return ops.sigmoid(class_scores)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "clean_prior": self.clean_prior,
            "flip_classes": self.flip_classes,
            "min_clean_prior": self.min_clean_prior,
        }
