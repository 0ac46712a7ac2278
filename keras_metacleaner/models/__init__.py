"""MetaCleanerModel and the backbones it trains."""

from keras_metacleaner.models.backbones import (
    BACKBONES,
    CaffePreprocessing,
    get_backbone,
    resnet50,
    small_cnn,
    wide_resnet,
)
from keras_metacleaner.models.metacleaner_model import (
    DEFAULT_MEMBER_LOSS_WEIGHT,
    DEFAULT_SUBSET_LOSS_WEIGHTS,
    SUBSET_LOSS_WEIGHTS,
    MetaCleanerModel,
)

__all__ = [
    "BACKBONES",
    "DEFAULT_MEMBER_LOSS_WEIGHT",
    "DEFAULT_SUBSET_LOSS_WEIGHTS",
    "SUBSET_LOSS_WEIGHTS",
    "CaffePreprocessing",
    "MetaCleanerModel",
    "get_backbone",
    "resnet50",
    "small_cnn",
    "wide_resnet",
]
