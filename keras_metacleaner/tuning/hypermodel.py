"""KerasTuner search over the subset size N (and the weighting, learning rate)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import keras_tuner
import tensorflow as tf

from keras_metacleaner import data
from keras_metacleaner.layers.weighting import DEFAULT_WEIGHTING, WEIGHTINGS
from keras_metacleaner.models import DEFAULT_MEMBER_LOSS_WEIGHT, MetaCleanerModel


class MetaCleanerHyperModel(keras_tuner.HyperModel):
    """Builds a `MetaCleanerModel` per trial and regroups the data to its N.

    The subset size changes the shape of the training batches, so this
    hypermodel takes the *ungrouped* training dataset of `(image, label)` and
    groups it inside `fit` with the trial's N, keeping the number of images
    per step about fixed (K = images_per_step // N), as the paper does when
    it compares subset sizes (Fig. 3).

    Args:
        backbone_fn: callable returning a fresh backbone `keras.Model` per trial.
        num_classes: number of classes.
        subset_sizes: values of N to search.
        weightings: weighting names to search (one value fixes it).
        learning_rates: SGD learning rates to search.
        images_per_step: K·N images per training step.
        member_loss_weights: values of `member_loss_weight` to search.
        seed: seed of the grouping and of the model.

    Example:

    >>> import tempfile
    >>> import numpy as np
    >>> import keras_metacleaner as kmc
    >>> y = np.arange(48) % 3
    >>> x = (np.random.default_rng(0).random((48, 8, 8, 1)) * 60 + 80 * y[:, None, None, None])
    >>> hypermodel = MetaCleanerHyperModel(
    ...     lambda: kmc.models.small_cnn((8, 8, 1), feature_dim=8), num_classes=3,
    ...     subset_sizes=(2, 4), images_per_step=16)
    >>> tuner = keras_tuner.GridSearch(
    ...     hypermodel, objective="val_accuracy", directory=tempfile.mkdtemp(), seed=0)
    >>> [hp.name for hp in tuner.oracle.get_space().space]
    ['subset_size', 'weighting', 'member_loss_weight', 'learning_rate']
    >>> train = tf.data.Dataset.from_tensor_slices((x.astype("float32"), y))
    >>> tuner.search(train, validation_data=(x, y), epochs=1, verbose=0)
    >>> sorted(t.hyperparameters.get("subset_size") for t in tuner.oracle.trials.values())
    [2, 4]

    `tools/tune.py` runs such a search with full training runs as trials
    (`keras_metacleaner.tuning.TrainingTuner`).
    """

    def __init__(
        self,
        backbone_fn: Callable[[], keras.Model],
        num_classes: int,
        subset_sizes: Sequence[int] = (2, 3, 4, 5, 6),
        weightings: Sequence[str] = (DEFAULT_WEIGHTING,),
        learning_rates: Sequence[float] = (0.02,),
        images_per_step: int = 128,
        member_loss_weights: Sequence[float] = (DEFAULT_MEMBER_LOSS_WEIGHT,),
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for n in subset_sizes:
            if not isinstance(n, int) or not 1 <= n <= images_per_step:
                raise ValueError(
                    f"subset_sizes must be integers in [1, images_per_step={images_per_step}]; "
                    f"got {n!r}."
                )
        unknown = [w for w in weightings if w not in WEIGHTINGS]
        if unknown:
            raise ValueError(
                f"Unknown weightings {unknown}; expected names from {sorted(WEIGHTINGS)}."
            )
        self.backbone_fn = backbone_fn
        self.num_classes = num_classes
        self.subset_sizes = list(subset_sizes)
        self.weightings = list(weightings)
        self.learning_rates = list(learning_rates)
        self.images_per_step = images_per_step
        self.member_loss_weights = list(member_loss_weights)
        self.seed = seed

    def build(self, hp: keras_tuner.HyperParameters) -> MetaCleanerModel:
        subset_size = hp.Choice("subset_size", self.subset_sizes)
        model = MetaCleanerModel(
            self.backbone_fn(),
            self.num_classes,
            subset_size,
            weighting=hp.Choice("weighting", self.weightings),
            member_loss_weight=hp.Choice("member_loss_weight", self.member_loss_weights),
            seed=self.seed,
        )
        model.compile(
            optimizer=keras.optimizers.SGD(
                hp.Choice("learning_rate", self.learning_rates), momentum=0.9
            ),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    def fit(self, hp, model, x: tf.data.Dataset, *args, **kwargs):
        """Groups `x` (ungrouped `(image, label)` pairs) by class with the trial's N, then fits."""
        if not isinstance(x, tf.data.Dataset):
            raise TypeError(
                "MetaCleanerHyperModel.fit takes the ungrouped training tf.data.Dataset of "
                f"(image, label) pairs, got {type(x).__name__}."
            )
        subset_size = hp.get("subset_size")
        groups = data.group_by_class(
            x,
            subset_size,
            max(1, self.images_per_step // subset_size),
            seed=self.seed,
            num_classes=self.num_classes,
        )
        return model.fit(groups, *args, **kwargs)
