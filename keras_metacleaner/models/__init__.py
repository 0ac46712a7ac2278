"""MetaCleanerModel, the named methods, the peers' models and the backbones they train."""

from keras_metacleaner.models.backbones import (
    BACKBONES,
    CaffePreprocessing,
    get_backbone,
    resnet50,
    small_cnn,
    wide_resnet,
)
from keras_metacleaner.models.coteaching import (
    CoTeachingModel,
    ForgetRateSchedule,
    estimate_forget_rate,
)
from keras_metacleaner.models.elr import ELRModel
from keras_metacleaner.models.metacleaner_model import (
    AUTO,
    DEFAULT_MEMBER_LOSS_WEIGHT,
    DEFAULT_SUBSET_LOSS_WEIGHTS,
    SUBSET_LOSS_WEIGHTS,
    MetaCleanerModel,
)
from keras_metacleaner.models.plain import plain_classifier
from keras_metacleaner.models.presets import DEFAULT_VERSION, DEFAULT_VERSIONS, PRESETS

# Registers the classes that left the public API under their old names, so
# `model.keras` files saved while they were public still load.
import keras_metacleaner.experimental  # noqa: E402, F401  isort: skip

__all__ = [
    "AUTO",
    "BACKBONES",
    "DEFAULT_MEMBER_LOSS_WEIGHT",
    "DEFAULT_SUBSET_LOSS_WEIGHTS",
    "DEFAULT_VERSION",
    "DEFAULT_VERSIONS",
    "PRESETS",
    "SUBSET_LOSS_WEIGHTS",
    "CaffePreprocessing",
    "CoTeachingModel",
    "ELRModel",
    "ForgetRateSchedule",
    "MetaCleanerModel",
    "estimate_forget_rate",
    "get_backbone",
    "plain_classifier",
    "resnet50",
    "small_cnn",
    "wide_resnet",
]
