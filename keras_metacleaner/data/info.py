"""DatasetInfo: what a source knows about its data besides the examples."""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf


@dataclasses.dataclass
class DatasetInfo:
    """Metadata returned by `keras_metacleaner.data.load`.

    Args:
        name: the spec the data was loaded from.
        num_classes: number of classes.
        class_names: one name per class id.
        image_shape: `(H, W, C)` of the images the datasets yield.
        train_size: number of training examples.
        test_size: number of test examples.
        train_labels: int32 `[train_size]`, the (possibly noisy) training
            labels in dataset order.
        train_clean_labels: int32 `[train_size]` true labels where the source
            has them (for diagnostics such as α AUROC only), else `None`.
        splits: extra splits by name, e.g. `"val"`, `"clean_train"`.
        decode_errors: the counter of unreadable image files skipped, at load
            and while iterating file-backed datasets (`None` for in-memory
            sources).

    Example:

    >>> info = DatasetInfo("toy", 2, ["a", "b"], (2, 2, 1), 3, 1, np.array([0, 1, 1], "int32"))
    >>> info.class_counts().tolist()
    [1, 2]
    """

    name: str
    num_classes: int
    class_names: list[str]
    image_shape: tuple
    train_size: int
    test_size: int
    train_labels: np.ndarray
    train_clean_labels: np.ndarray | None = None
    splits: dict[str, tf.data.Dataset] = dataclasses.field(default_factory=dict)
    decode_errors: object | None = None

    @property
    def skipped_files(self) -> int:
        """How many distinct image files were skipped as unreadable so far (0 for arrays).

        Files refused at load are counted at once; a file that only fails
        when decoded later is added when a pipeline meets it.
        """
        return 0 if self.decode_errors is None else int(self.decode_errors.count)

    def class_counts(self) -> np.ndarray:
        """Number of training examples per class, `[num_classes]` int64."""
        return np.bincount(self.train_labels, minlength=self.num_classes)
