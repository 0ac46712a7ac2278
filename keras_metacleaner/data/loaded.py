"""LoadedData: what `load` returns, with the training split's labels and fast view explicit."""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from keras_metacleaner.data import indexed
from keras_metacleaner.data.info import DatasetInfo


def _check_labels(labels, num_classes: int, size: int, where: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"{where}: `labels` must be 1-D class ids, got shape {labels.shape}.")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{where}: `labels` must be integer class ids, got dtype {labels.dtype}.")
    if labels.size != size:
        raise ValueError(
            f"{where}: the training split has {size} examples but {labels.size} labels were given."
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0]
        raise ValueError(f"{where}: `labels` must lie in [0, {num_classes}), found {bad}.")
    return labels.astype(np.int32)


class LoadedData:
    """A dataset as `load` returns it: the training split, its labels and its fast view.

    It unpacks as `train, test, info = load(...)`, so code written for the
    tuple keeps working. The training labels (`labels`), the true labels
    where known (`clean_labels`), the file paths (`paths`) and the
    random-access view (`view`) are explicit attributes: `take`,
    `with_labels` and `split_validation` return new `LoadedData` objects
    that keep the view, so `group_by_class(loaded, ...)` always takes the
    fast index path when the source has one (everything but TFDS).

    Args:
        info: the `DatasetInfo` of the source.
        test: the test split, an unbatched dataset of `(image, label)`.
        labels: int32 training labels in order.
        view: the training split's `IndexedSource`, or `None` for a stream.
        train: the training stream when there is no view (built from the
            view otherwise).
        clean_labels: the true training labels where known, else `None`.
        indices: int64 positions of these examples in the source's training
            split (`arange(n)` by default).

    Example:

    >>> loaded = from_arrays(np.full((6, 2, 2, 1), 9, "uint8"), [0, 1, 0, 1, 0, 1],
    ...                      np.full((2, 2, 2, 1), 9, "uint8"), [0, 1])
    >>> train, test, info = loaded
    >>> part, held = loaded.split_validation(0.5, seed=0)
    >>> part.labels.size, held.labels.size, sorted(part.indices.tolist() + held.indices.tolist())
    (3, 3, [0, 1, 2, 3, 4, 5])
    """

    def __init__(
        self,
        info: DatasetInfo,
        test: tf.data.Dataset,
        labels,
        view: indexed.IndexedSource | None = None,
        train: tf.data.Dataset | None = None,
        clean_labels=None,
        indices=None,
    ):
        if (view is None) == (train is None):
            raise ValueError("LoadedData needs exactly one of `view` and `train`.")
        self.labels = np.asarray(labels, np.int32)
        if view is not None and not np.array_equal(view.labels, self.labels):
            raise ValueError("LoadedData: `labels` differ from the view's labels.")
        self.clean_labels = None if clean_labels is None else np.asarray(clean_labels, np.int32)
        if self.clean_labels is not None and self.clean_labels.shape != self.labels.shape:
            raise ValueError(
                f"LoadedData: {self.clean_labels.size} clean labels for {self.labels.size} "
                "examples."
            )
        n = self.labels.size
        self.indices = np.arange(n, dtype=np.int64) if indices is None else np.asarray(indices)
        self.view = view
        self.test = test
        self.info = dataclasses.replace(
            info, train_size=n, train_labels=self.labels, train_clean_labels=self.clean_labels
        )
        self._train = train

    # ------------------------------------------------------------- reading
    @property
    def train(self) -> tf.data.Dataset:
        """The training split: unbatched `(image float32 raw pixels [H, W, C], label int32)`."""
        if self._train is None:
            self._train = self.view.to_dataset()
        return self._train

    @property
    def size(self) -> int:
        """Number of training examples."""
        return int(self.labels.size)

    @property
    def paths(self) -> np.ndarray | None:
        """The training images' file paths (str), or `None` for in-memory data and streams."""
        if self.view is None or not self.view.is_files:
            return None
        return np.array([p.decode() if isinstance(p, bytes) else p for p in self.view.elements])

    def __iter__(self):
        return iter((self.train, self.test, self.info))

    def __getitem__(self, index):
        return (self.train, self.test, self.info)[index]

    def __repr__(self) -> str:
        path = "index" if self.view is not None else "streaming"
        return (
            f"LoadedData({self.info.name!r}, train={self.size}, test={self.info.test_size}, "
            f"classes={self.info.num_classes}, path={path})"
        )

    # ---------------------------------------------------------- deriving
    def _derive(self, positions, labels=None) -> LoadedData:
        """The examples at `positions` (a slice or an index array), optionally relabelled."""
        labels = self.labels[positions] if labels is None else labels
        clean = None if self.clean_labels is None else self.clean_labels[positions]
        view, train = None, None
        if self.view is not None:
            view = self.view.select(positions).with_labels(labels)
        else:
            train = _select_stream(self.train, positions, self.size)
            if labels is not self.labels[positions]:
                images = train.map(lambda image, label: image)
                train = tf.data.Dataset.zip((images, tf.data.Dataset.from_tensor_slices(labels)))
        return LoadedData(self.info, self.test, labels, view, train, clean, self.indices[positions])

    def take(self, count: int) -> LoadedData:
        """The first `count` training examples (all of them if there are fewer).

        Example:

        >>> loaded = from_arrays(np.zeros((5, 2, 2, 1), "uint8"), [0, 1, 0, 1, 0],
        ...                      np.zeros((1, 2, 2, 1), "uint8"), [0])
        >>> loaded.take(3).labels.tolist(), loaded.take(3).view is not None
        ([0, 1, 0], True)
        """
        count = indexed.check_count(count, "LoadedData.take")
        return self._derive(slice(0, min(count, self.size)))

    def with_labels(self, labels) -> LoadedData:
        """The same examples with new training labels (e.g. after noise injection).

        Args:
            labels: one integer class id in `[0, num_classes)` per training
                example, in order.

        Example:

        >>> loaded = from_arrays(np.zeros((3, 2, 2, 1), "uint8"), [0, 1, 0],
        ...                      np.zeros((1, 2, 2, 1), "uint8"), [0])
        >>> loaded.with_labels([1, 1, 0]).labels.tolist()
        [1, 1, 0]
        """
        labels = _check_labels(labels, self.info.num_classes, self.size, "with_labels")
        derived = self._derive(slice(None), labels)
        derived.indices = self.indices
        return derived

    def split_validation(self, fraction: float, seed: int = 0) -> tuple[LoadedData, LoadedData]:
        """Holds out a random `fraction` of the training examples.

        Cut it after noise injection for a validation split as noisy as
        training (a clean one would make picking an epoch an oracle).

        Args:
            fraction: share held out, in (0, 1); at least one example must
                land on each side.
            seed: seed of the draw; the same seed gives the same split.

        Returns:
            `(kept, held_out)`, both `LoadedData` in the original order, whose
            `indices` are positions in this object's source order.

        Example:

        >>> loaded = from_arrays(np.zeros((10, 2, 2, 1), "uint8"), np.arange(10) % 2,
        ...                      np.zeros((1, 2, 2, 1), "uint8"), [0])
        >>> kept, held = loaded.split_validation(0.2, seed=1)
        >>> kept.size, held.size, bool(np.intersect1d(kept.indices, held.indices).size)
        (8, 2, False)
        """
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.floating)):
            raise ValueError(f"split_validation: `fraction` must be a number, got {fraction!r}.")
        if not 0.0 < float(fraction) < 1.0:
            raise ValueError(f"split_validation: `fraction` must be in (0, 1), got {fraction!r}.")
        count = int(round(self.size * float(fraction)))
        if not 0 < count < self.size:
            raise ValueError(
                f"split_validation: fraction={fraction} of {self.size} examples holds out "
                f"{count}; both parts need at least one example."
            )
        order = np.random.default_rng(seed).permutation(self.size)
        kept, held = np.sort(order[count:]), np.sort(order[:count])
        return self._derive(kept), self._derive(held)


def _select_stream(dataset: tf.data.Dataset, positions, size: int) -> tf.data.Dataset:
    """The elements of a dataset without random access at `positions` (kept in order)."""
    if isinstance(positions, slice):
        start, stop, _ = positions.indices(size)
        return dataset.skip(start).take(stop - start)
    mask = np.zeros(size, bool)
    mask[positions] = True
    keep = tf.constant(mask)
    selected = dataset.enumerate().filter(lambda i, element: tf.gather(keep, i))
    selected = selected.map(lambda i, element: element)
    return selected.apply(tf.data.experimental.assert_cardinality(int(mask.sum())))


def from_arrays(
    x_train,
    y_train,
    x_test,
    y_test,
    *,
    class_names=None,
    clean_labels=None,
    name: str = "arrays",
    image_size=None,
) -> LoadedData:
    """A `LoadedData` from in-memory arrays, with the same checks as `npz:` files.

    Args:
        x_train, x_test: images `[n, H, W]` or `[n, H, W, C]`, raw pixels
            (uint8, or float in [0, 255]).
        y_train, y_test: integer class ids.
        class_names: one name per class (default: `"0"`, `"1"`, ...).
        clean_labels: true training labels, for diagnostics only.
        name: names the data in errors and `info.name`.
        image_size: int or `(height, width)` to resize to, or `None`.

    Example:

    >>> loaded = from_arrays(np.zeros((4, 3, 3), "uint8"), [0, 1, 1, 0],
    ...                      np.zeros((2, 3, 3), "uint8"), [1, 0])
    >>> loaded.info.image_shape, loaded.info.num_classes
    ((3, 3, 1), 2)
    """
    from keras_metacleaner.data.sources import npz

    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    if class_names is not None:
        arrays["class_names"] = np.asarray(class_names)
    if clean_labels is not None:
        arrays["y_train_clean"] = clean_labels
    return npz.from_arrays(arrays, name, image_size)
