"""Data preparation of a run: load, first n examples, label noise, noisy validation split.

Order matters and is fixed here: `train_subset` keeps the first n examples
(before noise, the same n images whatever the noise), then the noise is
injected into the training labels, then `validation_split` holds out a
fraction of the now noisy examples, so the held-out split is as noisy as
training (a split taken before the noise would be clean, and picking epochs
on it would be an oracle). A clean validation split is used only when the
source ships one (`info.splits["val"]`, e.g. Clothing1M's) and no
`validation_split` is asked for.

Every check that needs the data runs in `prepare_data`, before a run writes
anything: the fine-tuning split and its class count, the batch size against
the number of examples, the transition matrix's size, a validation split for
`select_on="noisy_val"`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import tensorflow as tf

from keras_metacleaner import data
from keras_metacleaner.data.noise_spec import noise_from_spec
from keras_metacleaner.training.config import SPLIT_PREFIX, TrainConfig


@dataclasses.dataclass
class Split:
    """Examples of one split: an unbatched, unshuffled `(image, label)` dataset and its labels.

    Attributes:
        dataset: `tf.data.Dataset` of `(image float32, label int32)`; keeps
            the random-access view of `load` where the source has one.
        labels: int32 labels as training sees them (noisy).
        clean: int32 true labels, or None when unknown.
        indices: positions in the training data after `train_subset`.
        loaded: the `kmc.data.LoadedData` of these examples (its view gives
            `group_by_class` the fast index path), or None.
    """

    dataset: tf.data.Dataset
    labels: np.ndarray
    clean: np.ndarray | None = None
    indices: np.ndarray | None = None
    loaded: Any = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclasses.dataclass
class PreparedData:
    """What `prepare_data` returns: the splits of a run and how they came about.

    Attributes:
        train: the training `Split` (after noise, without the validation part).
        validation: the validation `Split` or None.
        validation_kind: `"noisy"` (held out after noise), `"clean"` (the
            source's own) or None.
        test: the test dataset (unbatched).
        info: the `DatasetInfo`.
        noise_injected: whether labels were corrupted here.
        realised_noise_rate: share of training labels differing from the
            clean ones (None when unknown).
        finetune: `(dataset, size)` of the fine-tuning stage, or None.
    """

    train: Split
    validation: Split | None
    validation_kind: str | None
    test: tf.data.Dataset
    info: Any
    noise_injected: bool
    realised_noise_rate: float | None
    finetune: tuple[tf.data.Dataset, int] | None = None

    @property
    def labels(self) -> np.ndarray:
        """The training labels (noisy)."""
        return self.train.labels

    @property
    def clean(self) -> np.ndarray | None:
        """The training labels' true values, or None."""
        return self.train.clean


def inject_noise(config: TrainConfig, labels: np.ndarray, info) -> np.ndarray | None:
    """The noisy labels of `config.noise_type` / `noise_rate`, or None when no noise applies.

    Args:
        config: the run's configuration.
        labels: the training labels before noise.
        info: the dataset's `DatasetInfo` (class count, name for `confusion`).

    Returns:
        int32 noisy labels, or None.

    Raises:
        ValueError: a matrix file of the wrong size, not row-stochastic, etc.
    """
    spec = noise_from_spec(config.noise_type, config.noise_rate, info.num_classes, config.dataset)
    if not spec.injected:
        return None
    noisy, _ = spec.apply(labels, info.num_classes, seed=config.seed)
    return np.asarray(noisy, np.int32)


def _count(dataset: tf.data.Dataset) -> int:
    size = int(dataset.cardinality())
    return size if size >= 0 else sum(1 for _ in dataset)


def finetune_source(config: TrainConfig, train: Split, info) -> tuple[tf.data.Dataset, int]:
    """`(dataset, size)` of the fine-tuning stage's single images; checks split and classes.

    Raises:
        ValueError: an unknown `split:NAME`, or another dataset's class count.
    """
    spec = config.finetune_dataset
    limit = config.finetune_subset or None
    if not spec:
        loaded = train.loaded.take(limit) if limit else train.loaded
        return loaded.train, loaded.size
    if spec.startswith(SPLIT_PREFIX):
        name = spec[len(SPLIT_PREFIX) :]
        if name not in info.splits:
            raise ValueError(
                f"finetune_dataset={spec}: the dataset has no split {name!r}; it has "
                f"{', '.join(sorted(info.splits)) or 'none'}."
            )
        dataset = info.splits[name]
        size = _count(dataset)
        if limit and limit < size:
            dataset, size = dataset.take(limit), limit
        return dataset, size
    other = data.load(spec, image_size=config.image_size, seed=config.seed)
    if other.info.num_classes != info.num_classes:
        raise ValueError(
            f"finetune_dataset={spec} has {other.info.num_classes} classes; the training data "
            f"has {info.num_classes}."
        )
    if limit:
        other = other.take(limit)
    return other.train, other.size


def prepare_data(config: TrainConfig) -> PreparedData:
    """Loads the data of `config` and runs every check that needs it.

    Args:
        config: a validated (resolved) `TrainConfig`.

    Returns:
        A `PreparedData`.

    Raises:
        ValueError: naming the setting (or file) when the data cannot serve
            the configuration. Nothing has been written when it raises.

    Example:

    >>> d = prepare_data(TrainConfig("npz:toy.npz", "/tmp/r"))  # doctest: +SKIP
    """
    loaded = data.load(config.dataset, image_size=config.image_size, seed=config.seed)
    info, test = loaded.info, loaded.test
    if config.train_subset and config.train_subset < loaded.size:
        loaded = loaded.take(config.train_subset)
    clean = loaded.clean_labels
    noisy = inject_noise(config, loaded.labels, info)
    if noisy is not None:
        clean = loaded.labels if clean is None else clean
        loaded = loaded.with_labels(noisy)
    train = Split(loaded.train, loaded.labels, clean, np.asarray(loaded.indices), loaded)

    validation, kind = None, None
    if config.validation_split > 0:
        # After the noise: the held-out labels are as noisy as the training ones.
        kept, held = loaded.split_validation(config.validation_split, seed=config.seed)

        def part(subset) -> Split:
            positions = np.searchsorted(train.indices, subset.indices)
            part_clean = None if clean is None else clean[positions]
            return Split(subset.train, subset.labels, part_clean, positions, subset)

        train, validation = part(kept), part(held)
        kind = "noisy"
    elif "val" in info.splits:
        val_ds = info.splits["val"]
        val_labels = np.asarray([y for _, y in val_ds.as_numpy_iterator()], np.int32)
        validation, kind = Split(val_ds, val_labels, val_labels), "clean"
    if config.select_on == "noisy_val" and validation is None:
        raise ValueError(
            "select_on=noisy_val needs a validation split: pass validation_split (e.g. 0.1) "
            f"({info.name} ships none)."
        )

    size = len(train)
    if size // config.batch_size < 1:
        raise ValueError(
            f"batch_size={config.batch_size} is larger than the {size} training examples."
        )
    finetune = None
    if config.finetune_epochs:
        finetune = finetune_source(config, train, info)
        if finetune[1] // config.batch_size < 1:
            raise ValueError(
                f"batch_size={config.batch_size} is larger than the {finetune[1]} fine-tuning "
                "examples."
            )
    realised = None if train.clean is None else float(np.mean(train.labels != train.clean))
    return PreparedData(
        train=train,
        validation=validation,
        validation_kind=kind,
        test=test,
        info=info,
        noise_injected=noisy is not None,
        realised_noise_rate=realised,
        finetune=finetune,
    )
