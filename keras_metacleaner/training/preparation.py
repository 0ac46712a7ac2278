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
import os
from typing import Any

import numpy as np
import tensorflow as tf

from keras_metacleaner import data
from keras_metacleaner.data import indexed
from keras_metacleaner.training.config import (
    CONFUSION_PREFIX,
    SPLIT_PREFIX,
    TRANSITION_PREFIX,
    TrainConfig,
)

#: The committed Fashion-MNIST confusion matrix of `--noise_type=confusion` (helper "data").
DEFAULT_CONFUSION = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "benchmarks",
    "data",
    "fashion_mnist_confusion.npy",
)


def load_transition(path: str, num_classes: int | None = None) -> np.ndarray:
    """Reads a `[C, C]` row-stochastic noise transition matrix (`.npy`, `.csv`, `.txt`).

    Args:
        path: the file.
        num_classes: expected C, checked when given.

    Returns:
        float64 `[C, C]`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not square, the wrong size, negative, or rows not summing to 1.

    Example:

    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "t.npy"); np.save(p, np.eye(3))
    >>> load_transition(p).shape
    (3, 3)
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"noise transition file {path!r} does not exist.")
    try:
        matrix = (
            np.load(path, allow_pickle=False)
            if path.endswith(".npy")
            else np.loadtxt(path, delimiter=None if path.endswith(".txt") else ",")
        )
    except ValueError as e:
        raise ValueError(f"noise transition {path!r} is not a numeric matrix: {e}") from None
    matrix = np.asarray(matrix, np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(
            f"noise transition {path!r} must be a square [C, C] matrix, got {matrix.shape}."
        )
    if num_classes is not None and matrix.shape[0] != num_classes:
        raise ValueError(
            f"noise transition {path!r} is {matrix.shape[0]}x{matrix.shape[0]} but the dataset "
            f"has {num_classes} classes."
        )
    if not np.isfinite(matrix).all() or (matrix < 0).any():
        raise ValueError(f"noise transition {path!r} must hold finite values >= 0.")
    if not np.allclose(matrix.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError(f"noise transition {path!r}: every row must sum to 1.")
    return matrix


@dataclasses.dataclass
class Split:
    """Examples of one split: an unbatched, unshuffled `(image, label)` dataset and its labels.

    Attributes:
        dataset: `tf.data.Dataset` of `(image float32, label int32)`; keeps
            the random-access view of `load` where the source has one.
        labels: int32 labels as training sees them (noisy).
        clean: int32 true labels, or None when unknown.
        indices: positions in the training data after `train_subset`.
    """

    dataset: tf.data.Dataset
    labels: np.ndarray
    clean: np.ndarray | None = None
    indices: np.ndarray | None = None

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


def _noise_matrix(noise_type: str, num_classes: int) -> tuple[str, np.ndarray | None]:
    if noise_type.startswith(TRANSITION_PREFIX):
        path = noise_type[len(TRANSITION_PREFIX) :]
        return "transition", load_transition(path, num_classes)
    if noise_type == CONFUSION_PREFIX or noise_type.startswith(CONFUSION_PREFIX + ":"):
        path = noise_type[len(CONFUSION_PREFIX) + 1 :] or DEFAULT_CONFUSION
        matrix = np.load(path) if path.endswith(".npy") else np.loadtxt(path, delimiter=",")
        matrix = np.asarray(matrix, np.float64)
        if matrix.shape != (num_classes, num_classes):
            raise ValueError(
                f"noise_type={noise_type}: the confusion matrix {path!r} is {matrix.shape}, the "
                f"dataset has {num_classes} classes."
            )
        return "confusion", matrix
    return noise_type, None


def inject_noise(config: TrainConfig, labels: np.ndarray, num_classes: int) -> np.ndarray | None:
    """The noisy labels of `config.noise_type` / `noise_rate`, or None when no noise applies.

    Example:

    >>> c = TrainConfig("x", "/tmp/r", noise_type="symmetric", noise_rate=0.5)
    >>> noisy = inject_noise(c, np.zeros(100, "int32"), 4)
    >>> 0.3 < float(np.mean(noisy != 0)) < 0.7
    True
    """
    if config.noise_type == "none":
        return None
    kind, matrix = _noise_matrix(config.noise_type, num_classes)
    if kind in ("symmetric", "pairflip") and config.noise_rate == 0:
        return None
    noisy, _ = data.add_label_noise(
        labels, config.noise_rate, kind, num_classes, seed=config.seed, transition=matrix
    )
    return np.asarray(noisy, np.int32)


def select(dataset: tf.data.Dataset, indices: np.ndarray, size: int) -> tf.data.Dataset:
    """The elements at sorted `indices` of a finite, unshuffled dataset of `size` elements.

    Keeps the random-access view of `load` (so `group_by_class` stays fast).

    Example:

    >>> ds = tf.data.Dataset.from_tensor_slices((np.arange(5.0), np.arange(5)))
    >>> [int(y) for _, y in select(ds, np.array([1, 3]), 5)]
    [1, 3]
    """
    keep = np.zeros(size, bool)
    keep[indices] = True
    mask = tf.constant(keep)
    result = (
        dataset.enumerate()
        .filter(lambda i, element: tf.gather(mask, i))
        .map(lambda i, element: element, num_parallel_calls=tf.data.AUTOTUNE)
        .apply(tf.data.experimental.assert_cardinality(len(indices)))
    )
    source = indexed.get_source(dataset)
    if source is not None:
        indexed.attach(
            result,
            dataclasses.replace(
                source, elements=source.elements[indices], labels=source.labels[indices]
            ),
        )
    return result


def split_validation(train: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """Holds out `fraction` of `train` (a seeded random choice), AFTER noise.

    Args:
        train: the (noisy) training split.
        fraction: in (0, 1).
        seed: the permutation's seed.

    Returns:
        `(train_part, validation_part)`, each with the labels it had in `train`.

    Example:

    >>> ds = tf.data.Dataset.from_tensor_slices((np.zeros((10, 1)), np.arange(10)))
    >>> part, val = split_validation(Split(ds, np.arange(10, dtype="int32")), 0.2, seed=0)
    >>> len(part), len(val), sorted(set(part.labels) | set(val.labels)) == list(range(10))
    (8, 2, True)
    """
    n = len(train)
    count = int(round(n * fraction))
    if count < 1 or count >= n:
        raise ValueError(
            f"validation_split={fraction} of {n} training examples leaves "
            f"{count} for validation and {n - count} for training; both need at least 1."
        )
    order = np.random.default_rng(seed).permutation(n)
    held, kept = np.sort(order[:count]), np.sort(order[count:])

    def part(idx: np.ndarray) -> Split:
        base = np.arange(n) if train.indices is None else train.indices
        return Split(
            select(train.dataset, idx, n),
            train.labels[idx],
            None if train.clean is None else train.clean[idx],
            base[idx],
        )

    return part(kept), part(held)


def _count(dataset: tf.data.Dataset) -> int:
    size = int(dataset.cardinality())
    return size if size >= 0 else sum(1 for _ in dataset)


def finetune_source(config: TrainConfig, train: Split, info) -> tuple[tf.data.Dataset, int]:
    """`(dataset, size)` of the fine-tuning stage's single images; checks split and classes.

    Raises:
        ValueError: an unknown `split:NAME`, or another dataset's class count.
    """
    spec = config.finetune_dataset
    if not spec:
        dataset, size = train.dataset, len(train)
    elif spec.startswith(SPLIT_PREFIX):
        name = spec[len(SPLIT_PREFIX) :]
        if name not in info.splits:
            raise ValueError(
                f"finetune_dataset={spec}: the dataset has no split {name!r}; it has "
                f"{', '.join(sorted(info.splits)) or 'none'}."
            )
        dataset = info.splits[name]
        size = _count(dataset)
    else:
        dataset, _, other = data.load(spec, image_size=config.image_size, seed=config.seed)
        if other.num_classes != info.num_classes:
            raise ValueError(
                f"finetune_dataset={spec} has {other.num_classes} classes; the training data has "
                f"{info.num_classes}."
            )
        size = other.train_size
    if config.finetune_subset and config.finetune_subset < size:
        dataset, size = data.take(dataset, config.finetune_subset), config.finetune_subset
    return dataset, size


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
    train_ds, test, info = data.load(config.dataset, image_size=config.image_size, seed=config.seed)
    labels = np.asarray(info.train_labels, np.int32)
    clean = (
        None if info.train_clean_labels is None else np.asarray(info.train_clean_labels, np.int32)
    )
    if config.train_subset and config.train_subset < len(labels):
        train_ds = data.take(train_ds, config.train_subset)
        labels = labels[: config.train_subset]
        clean = None if clean is None else clean[: config.train_subset]
    noisy = inject_noise(config, labels, info.num_classes)
    if noisy is not None:
        clean = labels if clean is None else clean
        labels = noisy
        train_ds = data.replace_labels(train_ds, labels)
    train = Split(train_ds, labels, clean, np.arange(len(labels)))

    validation, kind = None, None
    if config.validation_split > 0:
        train, validation = split_validation(train, config.validation_split, config.seed)
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
