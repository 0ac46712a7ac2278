"""Random-access views of datasets, so grouping can sample indices, not stream images.

`load` returns a `LoadedData` whose `view` is an `IndexedSource` for
in-memory and file-backed sources. `group_by_class` then draws subsets as
index arrays and reads (or decodes) only the images it emits, instead of
pushing every image through shuffle and grouping buffers. Anything else (a
dataset mapped by the user, TFDS) takes the generic streaming path, which
needs no such view.

For callers of the older API that pass `tf.data.Dataset`s around, the view is
also attached to the datasets `LoadedData.train` returns (`attach` /
`get_source`); plain `tf.data` operations drop it, `take` below keeps it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable

import numpy as np
import tensorflow as tf

logger = logging.getLogger(__name__)

_ATTRIBUTE = "_keras_metacleaner_indexed_source"


class DecodeErrors:
    """Counts the unreadable image files that were skipped, once per file.

    The same broken file met again (in a later epoch, or by another split)
    is not counted again. The first skip is logged (with the path); later
    ones are only counted. `count` and `paths` (the first `max_paths` of
    them) can be read at any time, e.g. after training for `results.json`.

    Args:
        max_paths: how many paths of skipped files to keep for messages.

    Example:

    >>> errors = DecodeErrors()
    >>> errors.record(["a.jpg", "b.jpg"])
    >>> errors.record(["a.jpg"])  # the same file again: not counted twice
    >>> errors.count, errors.paths
    (2, ['a.jpg', 'b.jpg'])
    """

    def __init__(self, max_paths: int = 10):
        self.max_paths = max_paths
        self.paths: list[str] = []
        self._seen: set[str] = set()
        self._unknown = 0
        self._logged = False
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        """Distinct files skipped so far (plus any skip whose file was unknown)."""
        return len(self._seen) + self._unknown

    def record(self, paths) -> None:
        """Adds skipped files (str or bytes paths; an empty string is an unknown file)."""
        paths = [p.decode() if isinstance(p, bytes) else str(p) for p in paths]
        with self._lock:
            for path in paths:
                if not path:
                    self._unknown += 1
                elif path not in self._seen:
                    self._seen.add(path)
                    if len(self.paths) < self.max_paths:
                        self.paths.append(path)
            if paths and not self._logged:
                self._logged = True
                logger.warning(
                    "Skipped %d unreadable or corrupt image file(s) so far (first: %s); further "
                    "skips are counted silently (see DatasetInfo.skipped_files).",
                    self.count,
                    ", ".join(self.paths) or "unknown",
                )

    def __repr__(self) -> str:
        return f"DecodeErrors(count={self.count}, paths={self.paths})"


@dataclasses.dataclass(frozen=True)
class IndexedSource:
    """A dataset's elements by index: what makes the fast grouping path possible.

    Args:
        elements: images `[n, H, W, C]` (any numeric dtype) or file paths `[n]`
            (bytes objects).
        labels: int32 `[n]`, in dataset order.
        load_fn: graph function from one element (or, for images, a batch of
            them) to float32 raw-pixel image(s).
        is_files: whether `elements` are paths (reading can then fail).
        errors: counter for skipped files.
        image_shape: `(H, W, C)` that `load_fn` returns (needed for files).
    """

    elements: np.ndarray
    labels: np.ndarray
    load_fn: Callable
    is_files: bool = False
    errors: DecodeErrors | None = None
    image_shape: tuple | None = None

    @property
    def size(self) -> int:
        return int(self.labels.shape[0])

    def with_labels(self, labels) -> IndexedSource:
        return dataclasses.replace(self, labels=np.asarray(labels, dtype=np.int32))

    def select(self, positions) -> IndexedSource:
        """The view of the elements at `positions` (an index array or a slice)."""
        return dataclasses.replace(
            self, elements=self.elements[positions], labels=self.labels[positions]
        )

    def to_dataset(self) -> tf.data.Dataset:
        """The unbatched `(image float32, label int32)` dataset of these elements, in order.

        File elements that cannot be read are skipped and counted in `errors`;
        the dataset still yields exactly `size` elements (its declared
        cardinality), the places of skipped files being refilled from a second
        pass, so that Keras knows an epoch's length.
        """
        if self.is_files:
            ds = _files_dataset(self)
        else:
            load_fn = self.load_fn
            ds = tf.data.Dataset.from_tensor_slices((self.elements, self.labels))
            ds = ds.map(lambda x, y: (load_fn(x), y), num_parallel_calls=tf.data.AUTOTUNE)
        return attach(ds, self)


def _files_dataset(source: IndexedSource) -> tf.data.Dataset:
    n = source.size
    paths, load_fn, errors = source.elements, source.load_fn, source.errors
    ds = tf.data.Dataset.from_tensor_slices(
        (np.arange(n, dtype=np.int64), np.asarray(paths, dtype=object), source.labels)
    )
    ds = ds.map(
        lambda position, path, label: (position, position, (position, load_fn(path), label)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    # A sentinel after the last file lets a failure at the very end be noticed too.
    empty = tf.zeros(source.image_shape, tf.float32)
    sentinel = (np.int64(n), np.int64(n), (np.int64(n), empty, np.int32(0)))
    ds = ds.concatenate(tf.data.Dataset.from_tensors(sentinel))

    def report(start, stop, hint):
        del hint
        if errors is not None:
            errors.record([paths[i] for i in range(start, min(stop, n))])

    ds = skip_unreadable(ds, report)
    ds = ds.filter(lambda position, image, label: position < n)
    ds = ds.map(lambda position, image, label: (image, label))
    shortfall = (
        f"More than half of {n} image files could not be decoded (see "
        "DatasetInfo.skipped_files); remove or repair them."
    )
    # A second pass refills the places of files that failed only now (not at load).
    return exact_length(ds.repeat(2), n, shortfall)


def exact_length(dataset: tf.data.Dataset, count: int, shortfall: str) -> tf.data.Dataset:
    """`dataset` cut to `count` elements and declared so; fails with `shortfall` if shorter.

    The declared count must be exact: Keras ends an epoch after that many
    steps and would warn (or, for a shorter input, fail inside
    `assert_cardinality` with a message that names no cause).
    """

    def fail(zero):
        # The condition depends on the element, so no graph optimisation can
        # evaluate the assertion before this element is actually reached.
        check = tf.debugging.Assert(tf.not_equal(zero, 0), [shortfall])
        with tf.control_dependencies([check]):
            return tf.nest.map_structure(
                lambda spec: tf.zeros(spec.shape, spec.dtype), dataset.element_spec
            )

    short = tf.data.Dataset.from_tensors(tf.constant(0, tf.int64)).map(fail)
    return (
        dataset.concatenate(short).take(count).apply(tf.data.experimental.assert_cardinality(count))
    )


def attach(dataset: tf.data.Dataset, source: IndexedSource) -> tf.data.Dataset:
    """Records `source` as the random-access view of `dataset`; returns `dataset`."""
    setattr(dataset, _ATTRIBUTE, source)
    return dataset


def get_source(dataset: tf.data.Dataset) -> IndexedSource | None:
    """The random-access view attached by `attach`, or `None`."""
    return getattr(dataset, _ATTRIBUTE, None)


def take(dataset, count: int):
    """The first `count` training examples, keeping the fast random-access path.

    Kept for callers of the tuple API; `LoadedData.take(count)` is the same.
    `dataset.take(count)` alone loses the view that `load` attached, so
    `group_by_class` would fall back to its slower streaming path.

    Args:
        dataset: a `LoadedData`, or a `tf.data.Dataset` (usually
            `load(...).train`).
        count: how many elements to keep (all of them if the data is
            shorter), an integer >= 0.

    Returns:
        For a `LoadedData`, `dataset.take(count)`; for a dataset, the dataset
        of its first `count` elements, with the view of those elements when
        it had one.

    Example:

    >>> import keras_metacleaner
    >>> train, _, info = keras_metacleaner.data.load("fashion_mnist")
    >>> small = keras_metacleaner.data.take(train, 1000)
    >>> int(small.cardinality())
    1000
    """
    count = check_count(count, "take")
    if not isinstance(dataset, tf.data.Dataset):
        return dataset.take(count)
    result = dataset.take(count)
    source = get_source(dataset)
    if source is not None:
        attach(result, source.select(slice(0, count)))
    return result


def check_count(count, where: str) -> int:
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise ValueError(f"{where}: `count` must be an integer >= 0, got {count!r}.")
    return int(count)


def skip_unreadable(dataset: tf.data.Dataset, report_fn: Callable) -> tf.data.Dataset:
    """Drops elements whose map raised, and reports how many went missing.

    Elements carry a running position (0, 1, 2, ... in input order). After
    `ignore_errors`, a jump in that position is exactly the number of dropped
    elements; `report_fn(start, stop, hint)` (Python, run only on a jump) is
    told the missing range and the hint of the next surviving element. The
    happy path never leaves the graph.

    Args:
        dataset: elements `(position int64, hint, payload)`.
        report_fn: Python callable `(start: int, stop: int, hint) -> None`.

    Returns:
        The dataset of `payload`s with failed elements removed.
    """

    def _report(start, stop, hint):
        report_fn(int(start), int(stop), hint.numpy())
        return np.int64(0)

    def _scan(last, position, hint, payload):
        gap = position - last - 1
        done = tf.cond(
            gap > 0,
            lambda: tf.py_function(_report, [last + 1, position, hint], tf.int64),
            lambda: tf.constant(0, tf.int64),
        )
        with tf.control_dependencies([done]):
            position = tf.identity(position)
        return position, payload

    def _unpack(last, element):
        return _scan(last, *element)

    return dataset.ignore_errors().scan(tf.constant(-1, tf.int64), _unpack)
