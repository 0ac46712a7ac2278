"""KerasTuner support: search the subset size (and more)."""

from keras_metacleaner.tuning.hypermodel import MetaCleanerHyperModel

__all__ = ["MetaCleanerHyperModel"]
