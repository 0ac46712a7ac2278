"""Noise-robust losses of the peers MetaCleaner is compared with."""

from keras_metacleaner.losses.robust import GeneralizedCrossEntropy, SymmetricCrossEntropy

__all__ = ["GeneralizedCrossEntropy", "SymmetricCrossEntropy"]
