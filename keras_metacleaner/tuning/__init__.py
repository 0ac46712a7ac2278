"""KerasTuner support: search the subset size N (and method, learning rate).

`TrainingTuner` runs full training runs as trials (what `tools/tune.py`
uses); `MetaCleanerHyperModel` plugs a `MetaCleanerModel` into any KerasTuner
tuner for notebooks.
"""

from keras_metacleaner.tuning.hypermodel import MetaCleanerHyperModel
from keras_metacleaner.tuning.space import BASELINE, SearchSpace, groups_per_batch
from keras_metacleaner.tuning.tuner import (
    BEST_FLAGS,
    BEST_HYPERPARAMETERS,
    OBJECTIVE,
    TUNERS,
    TrainingTuner,
    best_flags,
    best_trial,
    export_best,
    format_trial_table,
    read_best,
    trial_table,
    validation_score,
    write_best,
)

__all__ = [
    "BASELINE",
    "BEST_FLAGS",
    "BEST_HYPERPARAMETERS",
    "OBJECTIVE",
    "TUNERS",
    "MetaCleanerHyperModel",
    "SearchSpace",
    "TrainingTuner",
    "best_flags",
    "best_trial",
    "export_best",
    "format_trial_table",
    "groups_per_batch",
    "read_best",
    "trial_table",
    "validation_score",
    "write_best",
]
