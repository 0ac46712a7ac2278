"""α = 1: the plain mean (Table 2, I)."""

from __future__ import annotations

import keras
from keras import ops

from keras_metacleaner.layers.weighting.base import PACKAGE, Weighting


@keras.saving.register_keras_serializable(package=PACKAGE)
class ConstantWeighting(Weighting):
    """α = 1 for every member: Eq. 3 becomes the plain mean (Table 2, I).

    Example:

    >>> w = ConstantWeighting(subset_size=4)
    >>> tuple(w(keras.ops.ones((2, 4, 8))).shape)
    (2, 4)
    """

    alpha_min = 1.0
    alpha_max = 1.0

    def call(self, features, class_scores=None):
        return ops.ones(ops.shape(features)[:2], dtype=features.dtype)
