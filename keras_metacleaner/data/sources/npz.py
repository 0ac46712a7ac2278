"""`npz:PATH`: images and labels from a NumPy `.npz` archive."""

from __future__ import annotations

import numpy as np

from keras_metacleaner.data.info import DatasetInfo
from keras_metacleaner.data.sources import common

REQUIRED_KEYS = ("x_train", "y_train", "x_test", "y_test")


def from_arrays(arrays, name: str, image_size=None, validation_split: float = 0.0, seed: int = 0):
    """Builds `(train, test, info)` from in-memory arrays.

    Args:
        arrays: mapping with `x_train, y_train, x_test, y_test` and optionally
            `y_train_clean` (true labels, for diagnostics) and `class_names`.
        name: used in error messages and `info.name`.
        image_size: int or `(h, w)` to resize to, or `None`.
        validation_split: fraction of the training set held out as
            `info.splits["val"]`.
        seed: seed of the held-out draw.

    Returns:
        `(train, test, info)` as `keras_metacleaner.data.load`.
    """
    missing = [key for key in REQUIRED_KEYS if key not in arrays]
    if missing:
        raise KeyError(
            f"{name}: missing required key(s) {missing}; expected {list(REQUIRED_KEYS)} "
            "(optional: y_train_clean, class_names)."
        )
    x_train = common.as_nhwc(np.asarray(arrays["x_train"]), f"{name} x_train")
    x_test = common.as_nhwc(np.asarray(arrays["x_test"]), f"{name} x_test")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(
            f"{name}: x_train images {x_train.shape[1:]} and x_test images {x_test.shape[1:]} "
            "differ."
        )
    class_names = arrays.get("class_names")
    num_classes = None if class_names is None else len(class_names)
    y_train = common.check_labels(
        np.asarray(arrays["y_train"]).reshape(-1), num_classes, f"{name} y_train"
    )
    y_test = common.check_labels(
        np.asarray(arrays["y_test"]).reshape(-1), num_classes, f"{name} y_test"
    )
    y_clean = arrays.get("y_train_clean")
    if y_clean is not None:
        y_clean = common.check_labels(
            np.asarray(y_clean).reshape(-1), num_classes, f"{name} y_train_clean"
        )
    for key, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if len(x) != len(y):
            raise ValueError(
                f"{name}: x_{key} has {len(x)} images but y_{key} has {len(y)} labels."
            )
        common.check_nonempty(len(x), f"{name}: the {key} split")
    if y_clean is not None and len(y_clean) != len(y_train):
        raise ValueError(
            f"{name}: y_train_clean has {len(y_clean)} labels but y_train has {len(y_train)}."
        )
    if num_classes is None:
        num_classes = int(max(y_train.max(), y_test.max())) + 1
        class_names = [str(i) for i in range(num_classes)]
    class_names = [str(c) for c in class_names]

    splits = {}
    if validation_split:
        keep, held = common.split_off(len(x_train), validation_split, seed)
        splits["val"] = common.array_dataset(x_train[held], y_train[held], image_size)
        x_train, y_train = x_train[keep], y_train[keep]
        y_clean = None if y_clean is None else y_clean[keep]
        common.check_nonempty(len(x_train), f"{name}: the train split after validation_split")

    train = common.array_dataset(x_train, y_train, image_size)
    test = common.array_dataset(x_test, y_test, image_size)
    info = DatasetInfo(
        name=name,
        num_classes=num_classes,
        class_names=class_names,
        image_shape=tuple(int(d) for d in train.element_spec[0].shape),
        train_size=len(x_train),
        test_size=len(x_test),
        train_labels=y_train,
        train_clean_labels=y_clean,
        splits=splits,
    )
    return train, test, info


def load(path: str, options: dict, image_size=None, validation_split: float = 0.0, seed: int = 0):
    """`npz:PATH` -> `(train, test, info)`."""
    if options:
        raise ValueError(f"npz:{path}: the npz source takes no options, got {sorted(options)}.")
    path = common.check_path(path, "npz file", directory=False)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except ValueError as error:
        raise ValueError(f"Cannot read npz file {path!r}: {error}") from error
    return from_arrays(arrays, f"npz:{path}", image_size, validation_split, seed)
