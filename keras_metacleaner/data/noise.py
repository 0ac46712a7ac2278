"""Synthetic label noise: symmetric, pair-flip, transition-matrix and confusion-derived noise."""

from __future__ import annotations

import logging

import numpy as np
import tensorflow as tf

from keras_metacleaner.data import indexed
from keras_metacleaner.data.noise_spec import check_confusion, check_transition

logger = logging.getLogger(__name__)

NOISE_KINDS = ("symmetric", "pairflip", "transition", "confusion")


def _check_labels(labels, num_classes: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"`labels` must be a 1-D array of class ids, got shape {labels.shape}.")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        if not np.all(np.equal(np.mod(labels, 1), 0)):
            raise ValueError(f"`labels` must be integer class ids, got dtype {labels.dtype}.")
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0]
        raise ValueError(f"`labels` must lie in [0, {num_classes}), found {bad}.")
    return labels


def confusion_targets(counts) -> np.ndarray:
    """Where each class's flips go: the confusion counts off the diagonal, each row normalised.

    A row with no off-diagonal count (a class the classifier never confused)
    spreads its flips uniformly over the other classes.

    Args:
        counts: `[C, C]` confusion counts, rows the true class, columns the
            predicted one.

    Returns:
        float64 `[C, C]`, zero diagonal, rows summing to 1.

    Example:

    >>> confusion_targets([[8, 2, 0], [1, 9, 3], [0, 0, 5]]).round(2).tolist()
    [[0.0, 1.0, 0.0], [0.25, 0.0, 0.75], [0.5, 0.5, 0.0]]
    """
    counts = check_confusion(counts, None)
    off = counts * (1.0 - np.eye(len(counts)))
    sums = off.sum(axis=1, keepdims=True)
    uniform = (1.0 - np.eye(len(counts))) / (len(counts) - 1)
    return np.where(sums > 0, off / np.where(sums > 0, sums, 1.0), uniform)


def add_label_noise(
    labels,
    rate: float,
    kind: str = "symmetric",
    num_classes: int | None = None,
    seed: int = 0,
    transition=None,
    confusion=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Corrupts class labels.

    `symmetric` (the paper's protocol): exactly `round(rate * n)` labels,
    chosen uniformly, each flip to a class drawn uniformly from the *other*
    classes. `pairflip`: the same number of labels move from class `c` to
    `(c + 1) % num_classes`. `transition`: each label `c` is redrawn from row
    `c` of the `[C, C]` matrix `transition` (rows sum to 1; `rate` is unused,
    the realised rate follows from the matrix). `confusion`: class-dependent
    noise as a trained classifier errs: in every class `c`, exactly
    `round(rate * n_c)` labels are flipped (the diagonal is `1 - rate` in
    every row), each to a class drawn from row `c` of the confusion counts
    `confusion` with its diagonal removed (see `confusion_targets`), so
    Shirt flips mostly to T-shirt, Pullover and Coat, rarely to Bag.

    The realised rate is logged; it equals `flipped_mask.mean()`.

    Args:
        labels: 1-D integer class ids.
        rate: fraction of labels to flip, in `[0, 1]`.
        kind: one of `NOISE_KINDS`.
        num_classes: number of classes (required).
        seed: seed of the draw; the same seed gives the same noise.
        transition: `[C, C]` row-stochastic matrix, for `kind="transition"`.
        confusion: `[C, C]` confusion counts (rows: true class), for
            `kind="confusion"`.

    Returns:
        `(noisy_labels int32 [n], flipped_mask bool [n])`.

    Example:

    >>> y = np.repeat(np.arange(10), 10)
    >>> noisy, flipped = add_label_noise(y, 0.4, "symmetric", num_classes=10, seed=0)
    >>> int(flipped.sum()), bool(np.all((noisy != y) == flipped))
    (40, True)
    """
    if kind not in NOISE_KINDS:
        raise ValueError(f"Unknown noise kind {kind!r}; expected one of {NOISE_KINDS}.")
    if (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, (int, np.integer))
        or num_classes < 2
    ):
        raise ValueError(f"`num_classes` must be an integer >= 2, got {num_classes!r}.")
    num_classes = int(num_classes)
    if kind != "transition" and not 0.0 <= float(rate) <= 1.0:
        raise ValueError(f"Noise `rate` must be in [0, 1], got {rate!r}.")
    labels = _check_labels(labels, num_classes)
    rng = np.random.default_rng(seed)
    n = labels.size
    noisy = labels.copy()

    if kind == "transition":
        if transition is None:
            raise ValueError("kind='transition' needs a `transition` matrix of shape [C, C].")
        matrix = check_transition(transition, num_classes)
        cumulative = np.cumsum(matrix, axis=1)
        draws = rng.random(n)
        noisy = (draws[:, None] > cumulative[labels]).sum(axis=1)
        noisy = np.minimum(noisy, num_classes - 1)
    elif kind == "confusion":
        if confusion is None:
            raise ValueError("kind='confusion' needs `confusion` counts of shape [C, C].")
        targets = confusion_targets(check_confusion(confusion, num_classes))
        for c in range(num_classes):
            members = np.flatnonzero(labels == c)
            chosen = rng.choice(members, size=int(round(float(rate) * members.size)), replace=False)
            noisy[chosen] = rng.choice(num_classes, size=chosen.size, p=targets[c])
    else:
        count = int(round(float(rate) * n))
        chosen = rng.choice(n, size=count, replace=False)
        if kind == "symmetric":
            # An offset in [1, C) never maps a label to itself: uniform over the others.
            offsets = rng.integers(1, num_classes, size=count)
        else:
            offsets = np.ones(count, dtype=np.int64)
        noisy[chosen] = (labels[chosen] + offsets) % num_classes

    flipped = noisy != labels
    logger.info(
        "Label noise %s (requested rate %s): flipped %d of %d labels, realised rate %.4f.",
        kind,
        rate if kind != "transition" else "from matrix",
        int(flipped.sum()),
        n,
        float(flipped.mean()) if n else 0.0,
    )
    return noisy.astype(np.int32), flipped


def replace_labels(dataset, labels):
    """Swaps the labels of an unshuffled `(image, label)` dataset (or of a `LoadedData`).

    Kept for callers of the tuple API; `LoadedData.with_labels(labels)` is the same.

    Args:
        dataset: a `LoadedData`, or a finite, unshuffled dataset of
            `(image, label)`.
        labels: new labels, one per element, in dataset order.

    Returns:
        For a `LoadedData`, `dataset.with_labels(labels)`; for a dataset, one
        of `(image, new_label int32)` in the same order, which keeps the fast
        grouping path when `dataset` had a random-access view.

    Example:

    >>> ds = tf.data.Dataset.from_tensor_slices((np.zeros((3, 2, 2, 1)), [0, 1, 1]))
    >>> [int(y) for _, y in replace_labels(ds, [1, 0, 0])]
    [1, 0, 0]
    """
    if not isinstance(dataset, tf.data.Dataset):
        return dataset.with_labels(labels)
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"`labels` must be 1-D, got shape {labels.shape}.")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"`labels` must be integer class ids, got dtype {labels.dtype}.")
    labels = labels.astype(np.int32)
    cardinality = int(dataset.cardinality())
    if cardinality >= 0 and cardinality != labels.size:
        raise ValueError(
            f"replace_labels: the dataset has {cardinality} elements but {labels.size} labels "
            "were given."
        )
    source = indexed.get_source(dataset)
    if source is not None:
        if source.size != labels.size:
            raise ValueError(
                f"replace_labels: the dataset has {source.size} elements but {labels.size} "
                "labels were given."
            )
        return source.with_labels(labels).to_dataset()
    images = dataset.map(lambda image, label: image)
    return tf.data.Dataset.zip((images, tf.data.Dataset.from_tensor_slices(labels)))
