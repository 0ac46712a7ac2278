"""`folder:PATH`: one sub-directory of JPEG / PNG images per class."""

from __future__ import annotations

import os

import numpy as np

from keras_metacleaner.data.sources import common


def scan(directory: str, class_names: list[str] | None = None):
    """Lists `directory/<class>/*.{jpg,jpeg,png}`.

    Args:
        directory: the root of the class folders.
        class_names: the class list to map names to ids (default: the sorted
            sub-directories of `directory`).

    Returns:
        `(class_names, paths, labels int32)`.
    """
    common.check_path(directory, "image folder", directory=True)
    found = sorted(d for d in os.listdir(directory) if os.path.isdir(os.path.join(directory, d)))
    if class_names is None:
        class_names = found
    if not class_names:
        raise ValueError(f"Image folder {directory!r} has no class sub-directories.")
    ids = {name: i for i, name in enumerate(class_names)}
    unknown = [name for name in found if name not in ids]
    if unknown:
        raise ValueError(
            f"Image folder {directory!r} has class folder(s) {unknown[:5]} that are not among "
            f"the training classes {class_names[:10]}."
        )
    paths, labels = [], []
    for name in found:
        files = common.list_images(os.path.join(directory, name))
        paths += files
        labels += [ids[name]] * len(files)
    if not paths:
        raise ValueError(f"Image folder {directory!r} holds no .jpg/.jpeg/.png images.")
    return class_names, paths, np.asarray(labels, dtype=np.int32)


def load(path: str, options: dict, image_size=None, validation_split: float = 0.0, seed: int = 0):
    """`folder:PATH` -> `(train, test, info)`.

    With `PATH/train/` and `PATH/test/`, those are the splits (and
    `validation_split` carves `info.splits["val"]` out of train). Without
    them, `PATH/<class>/` is the training data and `validation_split` (> 0)
    holds out the test split.
    """
    if options:
        raise ValueError(
            f"folder:{path}: the folder source takes no options, got {sorted(options)}."
        )
    root = common.check_path(path, "image folder", directory=True)
    train_dir, test_dir = os.path.join(root, "train"), os.path.join(root, "test")
    name = f"folder:{path}"
    if os.path.isdir(train_dir) and os.path.isdir(test_dir):
        class_names, train_paths, train_labels = scan(train_dir)
        _, test_paths, test_labels = scan(test_dir, class_names)
        return common.from_file_lists(
            name,
            class_names,
            (train_paths, train_labels),
            (test_paths, test_labels),
            image_size,
            validation_split,
            seed,
        )
    if not validation_split:
        raise ValueError(
            f"Image folder {root!r} has no train/ and test/ sub-directories; pass "
            "validation_split > 0 to hold out a test split from its class folders."
        )
    class_names, paths, labels = scan(root)
    keep, held = common.split_off(len(paths), validation_split, seed)
    return common.from_file_lists(
        name,
        class_names,
        ([paths[i] for i in keep], labels[keep]),
        ([paths[i] for i in held], labels[held]),
        image_size,
        0.0,
        seed,
    )
