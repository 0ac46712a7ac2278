"""Random-access views of datasets, so grouping can sample indices, not stream images.

`load` attaches an `IndexedSource` to the datasets of in-memory and
file-backed sources. `group_by_class` then draws subsets as index arrays and
reads (or decodes) only the images it emits, instead of pushing every image
through shuffle and grouping buffers. Anything else (a dataset mapped by the
user, TFDS) takes the generic streaming path, which needs no such view.
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
    """Counts unreadable images that the pipelines skipped.

    The first skip is logged once (with the path); later ones are only
    counted. `count` and `paths` (the first `max_paths` of them) can be read
    at any time, e.g. after an epoch.

    Args:
        max_paths: how many paths of skipped files to keep.

    Example:

    >>> errors = DecodeErrors()
    >>> errors.record(["a.jpg", "b.jpg"])
    >>> errors.count, errors.paths
    (2, ['a.jpg', 'b.jpg'])
    """

    def __init__(self, max_paths: int = 10):
        self.max_paths = max_paths
        self.count = 0
        self.paths: list[str] = []
        self._logged = False
        self._lock = threading.Lock()

    def record(self, paths) -> None:
        """Adds skipped files (str or bytes paths; an empty string counts as unknown)."""
        paths = [p.decode() if isinstance(p, bytes) else str(p) for p in paths]
        with self._lock:
            self.count += len(paths)
            for path in paths:
                if path and len(self.paths) < self.max_paths and path not in self.paths:
                    self.paths.append(path)
            if not self._logged:
                self._logged = True
                logger.warning(
                    "Skipped %d unreadable or corrupt image(s) so far (first: %s); further "
                    "skips are counted silently (see DatasetInfo.decode_errors).",
                    self.count,
                    ", ".join(self.paths) or "unknown",
                )

    def __repr__(self) -> str:
        return f"DecodeErrors(count={self.count}, paths={self.paths})"


@dataclasses.dataclass(frozen=True)
class IndexedSource:
    """A dataset's elements by index.

    Args:
        elements: images `[n, H, W, C]` (any numeric dtype) or file paths `[n]`.
        labels: int32 `[n]`, in dataset order.
        load_fn: graph function from one element (or, for images, a batch of
            them) to float32 raw-pixel image(s).
        is_files: whether `elements` are paths (reading can then fail).
        errors: counter for skipped files.
    """

    elements: np.ndarray
    labels: np.ndarray
    load_fn: Callable
    is_files: bool = False
    errors: DecodeErrors | None = None

    @property
    def size(self) -> int:
        return int(self.labels.shape[0])

    def with_labels(self, labels) -> IndexedSource:
        return dataclasses.replace(self, labels=np.asarray(labels, dtype=np.int32))


def attach(dataset: tf.data.Dataset, source: IndexedSource) -> tf.data.Dataset:
    """Records `source` as the random-access view of `dataset`; returns `dataset`."""
    setattr(dataset, _ATTRIBUTE, source)
    return dataset


def get_source(dataset: tf.data.Dataset) -> IndexedSource | None:
    """The random-access view attached by `attach`, or `None`."""
    return getattr(dataset, _ATTRIBUTE, None)


def take(dataset: tf.data.Dataset, count: int) -> tf.data.Dataset:
    """The first `count` elements of `dataset`, keeping its random-access view.

    `dataset.take(count)` alone loses the view that `load` attached, so
    `group_by_class` would fall back to its slower streaming path.

    Args:
        dataset: a `tf.data.Dataset`, usually one returned by `load`.
        count: how many elements to keep (all of them if the dataset is
            shorter), an integer >= 0.

    Returns:
        The dataset of the first `count` elements; when `dataset` has a
        random-access view, the result has the view of those elements.

    Example:

    >>> import keras_metacleaner
    >>> train, _, info = keras_metacleaner.data.load("fashion_mnist")
    >>> small = keras_metacleaner.data.take(train, 1000)
    >>> int(small.cardinality())
    1000
    """
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise ValueError(f"take: `count` must be an integer >= 0, got {count!r}.")
    count = int(count)
    result = dataset.take(count)
    source = get_source(dataset)
    if source is not None:
        attach(
            result,
            dataclasses.replace(
                source, elements=source.elements[:count], labels=source.labels[:count]
            ),
        )
    return result


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
