"""Experiments that were measured and did not help: kept runnable, outside the public API.

Nothing here is exported by `keras_metacleaner` or used by its methods. The
classes stay so that the negative results in docs/results.md can be rerun
and so that `model.keras` files saved while they were public keep loading
(they are registered under their old names). They may change or go away.

- `RemedyDenseWeighting`: the paper's FC weighting with the remedies tried
  against its collapse (leaky ReLU, output bias, normalised or
  gradient-stopped inputs, temperature).
- `WarmupWeighting` + `WeightingWarmup`: hold a weighting at the plain mean
  for the first epochs.
- `NormalizedLossMetaCleanerModel`: `MetaCleanerModel` with member weights
  `N·α/Σα` and subset weights divided by their batch mean.
"""

from keras_metacleaner.experimental.dense import RemedyDenseWeighting
from keras_metacleaner.experimental.normalized import NormalizedLossMetaCleanerModel
from keras_metacleaner.experimental.warmup import WarmupWeighting, WeightingWarmup

__all__ = [
    "NormalizedLossMetaCleanerModel",
    "RemedyDenseWeighting",
    "WarmupWeighting",
    "WeightingWarmup",
]
