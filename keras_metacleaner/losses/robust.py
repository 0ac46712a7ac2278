"""Generalized and symmetric cross-entropy: losses that bound the pull of a wrong label."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

PACKAGE = "keras_metacleaner"
#: Probabilities are clipped to [EPSILON, 1] before a log or a power.
EPSILON = 1e-7


def _label_probability(y_true, y_pred):
    """p(y | x) for sparse labels `[B]` (or `[B, 1]`) and probabilities `[B, C]`."""
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.cast(ops.reshape(y_true, (-1,)), "int32")
    one_hot = ops.one_hot(y_true, ops.shape(y_pred)[-1], dtype=y_pred.dtype)
    return ops.sum(one_hot * y_pred, axis=-1)


@keras.saving.register_keras_serializable(package=PACKAGE)
class GeneralizedCrossEntropy(keras.losses.Loss):
    """L_q = (1 - p_y^q) / q (Zhang & Sabuncu, NeurIPS 2018).

    Interpolates between cross-entropy (q → 0: (1 - p^q)/q → -log p) and
    the mean absolute error (q = 1: 1 - p_y, half the L1 distance between
    the one-hot label and p). Its gradient is p_y^q times that of
    cross-entropy, so examples the model finds unlikely under their label,
    the typical mislabelled ones, pull less than under cross-entropy, while
    training stays faster than with MAE alone.

    Args:
        q: float in (0, 1]. 0.7 in the paper.
        reduction: Keras reduction.
        name: loss name.

    Call arguments:
        y_true: `[B]` int class ids.
        y_pred: `[B, C]` probabilities.

    Example:

    >>> loss = GeneralizedCrossEntropy(q=1.0)
    >>> round(float(loss([0], [[0.25, 0.75]])), 4)
    0.75
    """

    def __init__(
        self,
        q: float = 0.7,
        reduction: str = "sum_over_batch_size",
        name: str = "generalized_cross_entropy",
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, reduction=reduction, **kwargs)
        if isinstance(q, bool) or not 0.0 < q <= 1.0:
            raise ValueError(f"`q` must be in (0, 1], got {q!r}.")
        self.q = float(q)

    def call(self, y_true, y_pred):
        p = ops.clip(_label_probability(y_true, y_pred), EPSILON, 1.0)
        return (1.0 - ops.power(p, self.q)) / self.q

    def get_config(self) -> dict:
        return {**super().get_config(), "q": self.q}


@keras.saving.register_keras_serializable(package=PACKAGE)
class SymmetricCrossEntropy(keras.losses.Loss):
    """α·CE + β·RCE, the reverse cross-entropy with log 0 clipped to A (Wang et al., ICCV 2019).

    The reverse cross-entropy `-Σ_k p_k log q_k` swaps the roles of the
    prediction p and the one-hot label q; with log 0 := A it equals
    `-A·(1 - p_y)`, a bounded loss (MAE-like) that does not let a wrong
    label dominate, while the α·CE term keeps learning fast on hard classes.

    Args:
        alpha: float >= 0. Weight of the cross-entropy (0.1 in the paper).
        beta: float >= 0. Weight of the reverse cross-entropy (1.0).
        log_clip: float < 0. A, the value of log 0 in the reverse term (-4).
        reduction: Keras reduction.
        name: loss name.

    Call arguments:
        y_true: `[B]` int class ids.
        y_pred: `[B, C]` probabilities.

    Example:

    >>> loss = SymmetricCrossEntropy(alpha=0.0, beta=1.0)
    >>> round(float(loss([0], [[0.25, 0.75]])), 4)
    3.0
    """

    def __init__(
        self,
        alpha: float = 0.1,
        beta: float = 1.0,
        log_clip: float = -4.0,
        reduction: str = "sum_over_batch_size",
        name: str = "symmetric_cross_entropy",
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, reduction=reduction, **kwargs)
        if alpha < 0 or beta < 0 or alpha + beta == 0:
            raise ValueError(
                f"`alpha` and `beta` must be >= 0 and not both 0, got {alpha!r} and {beta!r}."
            )
        if not log_clip < 0:
            raise ValueError(f"`log_clip` must be < 0 (log 0 := A), got {log_clip!r}.")
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.log_clip = float(log_clip)

    def call(self, y_true, y_pred):
        p = _label_probability(y_true, y_pred)
        cross_entropy = -ops.log(ops.clip(p, EPSILON, 1.0))
        reverse = -self.log_clip * (1.0 - p)
        return self.alpha * cross_entropy + self.beta * reverse

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "alpha": self.alpha,
            "beta": self.beta,
            "log_clip": self.log_clip,
        }
