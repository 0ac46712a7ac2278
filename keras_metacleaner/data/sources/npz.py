"""`npz:PATH`: images and labels from a NumPy `.npz` archive."""

from __future__ import annotations

import zipfile

import numpy as np

from keras_metacleaner.data.info import DatasetInfo
from keras_metacleaner.data.loaded import LoadedData
from keras_metacleaner.data.sources import common

REQUIRED_KEYS = ("x_train", "y_train", "x_test", "y_test")


def from_arrays(arrays, name: str, image_size=None) -> LoadedData:
    """Builds a `LoadedData` from in-memory arrays, refusing bad data up front.

    Args:
        arrays: mapping with `x_train, y_train, x_test, y_test` and optionally
            `y_train_clean` (true labels, for diagnostics) and `class_names`.
        name: names the data (e.g. `npz:/path/file.npz`) in every error and
            in `info.name`.
        image_size: int or `(h, w)` to resize to, or `None`.

    Returns:
        A `LoadedData` (unpacks as `train, test, info`).

    Raises:
        ValueError: naming `name` and the array: a missing key, labels that
            are not integer ids in range, x / y of different lengths, an empty
            split, images that are not `[n, H, W(, C)]`, non-finite pixels,
            float pixels in [0, 1] instead of raw [0, 255], bad class names.
    """
    missing = [key for key in REQUIRED_KEYS if key not in arrays]
    if missing:
        raise ValueError(
            f"{name}: missing required array(s) {missing}; expected {list(REQUIRED_KEYS)} "
            f"(optional: y_train_clean, class_names); found {sorted(arrays)}."
        )
    x_train = common.as_nhwc(np.asarray(arrays["x_train"]), f"{name} x_train")
    x_test = common.as_nhwc(np.asarray(arrays["x_test"]), f"{name} x_test")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(
            f"{name}: x_train images {x_train.shape[1:]} and x_test images {x_test.shape[1:]} "
            "differ."
        )
    class_names = arrays.get("class_names")
    if class_names is not None:
        class_names = common.check_class_names(
            np.asarray(class_names).tolist(), f"{name} class_names"
        )
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
    common.check_pixels(x_train, f"{name} x_train")
    common.check_pixels(x_test, f"{name} x_test")
    if num_classes is None:
        num_classes = int(max(y_train.max(), y_test.max())) + 1
        class_names = [str(i) for i in range(num_classes)]

    view = common.array_source(x_train, y_train, image_size)
    test = common.array_source(x_test, y_test, image_size).to_dataset()
    info = DatasetInfo(
        name=name,
        num_classes=num_classes,
        class_names=class_names,
        image_shape=tuple(int(d) for d in test.element_spec[0].shape),
        train_size=len(x_train),
        test_size=len(x_test),
        train_labels=y_train,
        train_clean_labels=y_clean,
    )
    return LoadedData(info, test, y_train, view=view, clean_labels=y_clean)


def load(path: str, options: dict, *, image_size=None, seed: int = 0) -> LoadedData:
    """`npz:PATH` -> `LoadedData`."""
    del seed  # nothing is drawn
    if options:
        raise ValueError(f"npz:{path}: the npz source takes no options, got {sorted(options)}.")
    path = common.check_path(path, "npz file", directory=False)
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"npz:{path}: not a valid .npz file (an .npz is a zip archive of arrays, as "
            "numpy.savez writes it); this file is not a zip archive."
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile) as error:
        message = str(error)
        if "allow_pickle" in message:
            message = "an array holds Python objects, which are not loaded (save plain arrays)"
        raise ValueError(f"npz:{path}: not a valid .npz file: {message}.") from error
    return from_arrays(arrays, f"npz:{path}", image_size)
