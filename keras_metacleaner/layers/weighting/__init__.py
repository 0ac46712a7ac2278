"""Noisy Weighting: functions that give each member of a subset a confidence α.

Every weighting maps subset features `[K, N, D]` to confidences `α: [K, N]`
inside a documented range `[alpha_min, alpha_max]`. The six variants of the
paper's Table 2 are here by name, plus three that read the members'
relations or the classifier instead of learning α from the hallucinated loss
alone (the paper's learned layer can collapse to a constant α: see
docs/results.md). One module per weighting; this one holds the registry.

To add a weighting: subclass `Weighting` (`base.py`) in a module of its own
(here or in your code), register it with
`keras.saving.register_keras_serializable`, and add one line to `WEIGHTINGS`.
"""

from __future__ import annotations

from typing import Any

from keras_metacleaner.layers.weighting.agreement import AgreementWeighting
from keras_metacleaner.layers.weighting.attention import AttentionWeighting
from keras_metacleaner.layers.weighting.base import PACKAGE, Weighting, _is_int
from keras_metacleaner.layers.weighting.constant import ConstantWeighting
from keras_metacleaner.layers.weighting.dense import DenseWeighting
from keras_metacleaner.layers.weighting.label_confidence import LabelConfidenceWeighting
from keras_metacleaner.layers.weighting.label_posterior import LabelPosteriorWeighting

__all__ = [
    "DEFAULT_WEIGHTING",
    "PACKAGE",
    "PAPER_WEIGHTING",
    "WEIGHTINGS",
    "AgreementWeighting",
    "AttentionWeighting",
    "ConstantWeighting",
    "DenseWeighting",
    "LabelConfidenceWeighting",
    "LabelPosteriorWeighting",
    "Weighting",
    "_is_int",
    "get_weighting",
]


#: Names accepted by `get_weighting` and the `weighting=` arguments.
WEIGHTINGS = {
    "constant": lambda n, h: ConstantWeighting(n, h),
    "attention_sig": lambda n, h: AttentionWeighting(n, h, gate="sigmoid"),
    "attention_exp": lambda n, h: AttentionWeighting(n, h, gate="exp"),
    "fc_fc_sig": lambda n, h: DenseWeighting(n, h, hidden_relu=False, output_relu=False),
    "fc_fc_relu_sig": lambda n, h: DenseWeighting(n, h, hidden_relu=False, output_relu=True),
    "fc_relu_fc_relu_sig": lambda n, h: DenseWeighting(n, h, hidden_relu=True, output_relu=True),
    "agreement": lambda n, h: AgreementWeighting(n, h),
    "label_confidence": lambda n, h: LabelConfidenceWeighting(n, h),
    "label_posterior": lambda n, h: LabelPosteriorWeighting(n, h),
}

#: The paper's Noisy Weighting (section 4, Table 2).
PAPER_WEIGHTING = "fc_fc_relu_sig"

#: The weighting of the project's default method (`PRESETS["metacleaner"]`).
DEFAULT_WEIGHTING = "label_posterior"


def get_weighting(name: str | Weighting, subset_size: int, hidden_units: int = 384) -> Weighting:
    """Returns the Noisy Weighting layer called `name`.

    Args:
        name: one of `WEIGHTINGS` (`"constant"`, `"attention_sig"`,
            `"attention_exp"`, `"fc_fc_sig"`, `"fc_fc_relu_sig"`,
            `"fc_relu_fc_relu_sig"`, `"agreement"`, `"label_confidence"`,
            `"label_posterior"`), or a `Weighting` instance, returned as is.
        subset_size: int. N.
        hidden_units: int. Hidden width where the weighting has one.

    Returns:
        A `Weighting` layer.

    Example:

    >>> get_weighting("fc_fc_relu_sig", subset_size=4).alpha_min
    0.5
    """
    if isinstance(name, Weighting):
        return name
    if name not in WEIGHTINGS:
        raise ValueError(
            f"Unknown weighting {name!r}; expected one of {sorted(WEIGHTINGS)} "
            "or a `keras_metacleaner.layers.Weighting` instance."
        )
    return WEIGHTINGS[name](subset_size, hidden_units)


def __getattr__(name: str) -> Any:
    # `WarmupWeighting` lived here until it moved to keras_metacleaner.experimental;
    # resolved lazily (the experimental module imports this one).
    if name == "WarmupWeighting":
        import warnings

        from keras_metacleaner.experimental.warmup import WarmupWeighting

        warnings.warn(
            "WarmupWeighting moved to keras_metacleaner.experimental.",
            DeprecationWarning,
            stacklevel=2,
        )
        return WarmupWeighting
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
