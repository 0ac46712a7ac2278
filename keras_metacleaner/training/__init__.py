"""The training recipe: optimizer and schedule, strategies, callbacks, results."""

from keras_metacleaner.training.callbacks import (
    AlphaHistogram,
    EpochHistory,
    EpochSummary,
    LearningRateLogger,
    WeightingWarmup,
)
from keras_metacleaner.training.recipe import (
    METHODS,
    TrainConfig,
    build_model,
    plain_classifier,
    run,
)
from keras_metacleaner.training.results import read_json, write_json_atomic
from keras_metacleaner.training.schedule import SGDL2, StepDecay, make_optimizer
from keras_metacleaner.training.strategy import STRATEGIES, get_strategy, is_chief, split_cpu

__all__ = [
    "METHODS",
    "SGDL2",
    "STRATEGIES",
    "AlphaHistogram",
    "EpochHistory",
    "EpochSummary",
    "LearningRateLogger",
    "StepDecay",
    "TrainConfig",
    "WeightingWarmup",
    "build_model",
    "get_strategy",
    "is_chief",
    "make_optimizer",
    "plain_classifier",
    "read_json",
    "run",
    "split_cpu",
    "write_json_atomic",
]
