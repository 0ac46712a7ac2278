"""Training: configuration, methods, data preparation, pipelines, stages, selection, results.

`run(TrainConfig(...))` is the entry point (`training.recipe`). The modules:

- `config`: `TrainConfig` (sections data / model / optimizer / run, flat
  flag names); imports no TensorFlow.
- `methods`: the registry of named methods (`METHODS`).
- `preparation`: load, first n examples, label noise, noisy validation split.
- `pipelines`: grouped subsets, single images, indexed images, test batches.
- `schedule`: SGD with coupled L2 and Keras' learning-rate schedules.
- `stages`: compile, callbacks and `fit` of each stage.
- `selection`: validation accuracy per epoch and the best epoch's weights.
- `results`: the results.json record.
- `keras_workarounds`: every patch of Keras internals, with its upstream issue.

Names are imported lazily, so `keras_metacleaner.training.config` loads without
TensorFlow.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "METHODS": "methods",
    "Method": "methods",
    "get_method": "methods",
    "plain_classifier": "methods",
    "TrainConfig": "config",
    "DataConfig": "config",
    "ModelConfig": "config",
    "OptimizerConfig": "config",
    "RunConfig": "config",
    "run": "recipe",
    "build_model": "recipe",
    "prepare_data": "preparation",
    "SGDL2": "schedule",
    "StepDecay": "schedule",
    "LinearWarmup": "schedule",
    "make_optimizer": "schedule",
    "make_schedule": "schedule",
    "STRATEGIES": "strategy",
    "get_strategy": "strategy",
    "is_chief": "strategy",
    "AlphaHistogram": "callbacks",
    "EpochHistory": "callbacks",
    "EpochSummary": "callbacks",
    "LearningRateLogger": "callbacks",
    "ValidationSelection": "selection",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'keras_metacleaner.training' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"keras_metacleaner.training.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
