"""MetaCleanerModel with normalised member and subset weights."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_metacleaner.layers.global_batch import global_mean
from keras_metacleaner.layers.weighting import PACKAGE
from keras_metacleaner.models.metacleaner_model import MetaCleanerModel


@keras.saving.register_keras_serializable(package=PACKAGE)
class NormalizedLossMetaCleanerModel(MetaCleanerModel):
    """`MetaCleanerModel` whose loss weights keep their scale whatever α does.

    Two options that were `MetaCleanerModel` arguments while they were tried:

    - `normalize_member_weights`: weigh each member's loss of
      `member_loss_weight` by `N·α_i / Σα` instead of `α_i`, so every
      subset carries the same total weight whatever its α.
    - `normalize_subset_weights`: divide the subset weights by their mean
      over the (global) batch, so they move weight between subsets without
      shrinking the hallucinated loss as a whole.

    Args:
        normalize_member_weights: bool.
        normalize_subset_weights: bool.
        **kwargs: `MetaCleanerModel` arguments.

    Example:

    >>> import keras_metacleaner as kmc
    >>> m = NormalizedLossMetaCleanerModel(
    ...     backbone=kmc.models.small_cnn(), num_classes=10, subset_size=2,
    ...     normalize_subset_weights=True)
    >>> m.subset_loss_weights
    'max_alpha'
    """

    def __init__(
        self,
        *args: Any,
        normalize_member_weights: bool = False,
        normalize_subset_weights: bool = False,
        **kwargs: Any,
    ) -> None:
        # As it was tried: α-weighted losses not rescaled over the batch.
        kwargs.setdefault("loss_weight_normalization", None)
        super().__init__(*args, **kwargs)
        self.normalize_member_weights = bool(normalize_member_weights)
        self.normalize_subset_weights = bool(normalize_subset_weights)

    @property
    def _normalize_member_weights(self) -> bool:  # type: ignore[override]
        return self.normalize_member_weights

    def _alpha_subset_weights(self, alpha):
        weights = super()._alpha_subset_weights(alpha)
        if self.normalize_subset_weights:
            weights = weights / ops.maximum(global_mean(weights), 1e-12)
        return weights

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "normalize_member_weights": self.normalize_member_weights,
            "normalize_subset_weights": self.normalize_subset_weights,
        }

    @classmethod
    def from_config(cls, config: dict) -> NormalizedLossMetaCleanerModel:
        return super().from_config(config)
