"""The MetaCleaner layer and its Noisy Weighting functions."""

from keras_metacleaner.layers.metacleaner import MetaCleaner
from keras_metacleaner.layers.weighting import (
    DEFAULT_WEIGHTING,
    PAPER_WEIGHTING,
    WEIGHTINGS,
    AgreementWeighting,
    AttentionWeighting,
    ConstantWeighting,
    DenseWeighting,
    LabelConfidenceWeighting,
    LabelPosteriorWeighting,
    Weighting,
    get_weighting,
)

__all__ = [
    "DEFAULT_WEIGHTING",
    "PAPER_WEIGHTING",
    "WEIGHTINGS",
    "AgreementWeighting",
    "AttentionWeighting",
    "ConstantWeighting",
    "DenseWeighting",
    "LabelConfidenceWeighting",
    "LabelPosteriorWeighting",
    "MetaCleaner",
    "Weighting",
    "get_weighting",
]
