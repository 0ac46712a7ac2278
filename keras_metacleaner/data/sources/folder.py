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


def load(path: str, options: dict, *, image_size=None, seed: int = 0):
    """`folder:PATH[?test_fraction=F&verify=header|none]` -> `LoadedData`.

    With `PATH/train/` and `PATH/test/`, those are the splits. Without them,
    `PATH/<class>/` holds all images and `test_fraction` (in (0, 1), drawn
    with `seed`) of them are held out as the test split. Every file's header
    is checked at load (`verify=none` skips that for huge folders); files
    that are not readable images are left out and counted once each in
    `info.skipped_files`.
    """
    options = dict(options)
    name = f"folder:{path}"
    verify = common.verify_option(options, name)
    fraction = options.pop("test_fraction", None)
    if options:
        raise ValueError(
            f"{name}: unknown option(s) {sorted(options)}; known: ['test_fraction', 'verify']."
        )
    root = common.check_path(path, "image folder", directory=True)
    train_dir, test_dir = os.path.join(root, "train"), os.path.join(root, "test")
    if has_splits(root):
        if fraction is not None:
            raise ValueError(
                f"{name}: the folder has train/ and test/ sub-directories; test_fraction "
                "does not apply."
            )
        class_names, train_paths, train_labels = scan(train_dir)
        _, test_paths, test_labels = scan(test_dir, class_names)
        return common.from_file_lists(
            name,
            class_names,
            (train_paths, train_labels),
            (test_paths, test_labels),
            image_size,
            verify=verify,
        )
    if fraction is None:
        raise ValueError(
            f"Image folder {root!r} has no train/ and test/ sub-directories; hold out a test "
            f"split from its class folders with folder:{path}?test_fraction=0.2."
        )
    try:
        fraction = float(fraction)
    except ValueError:
        fraction = -1.0
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"{name}: test_fraction must be a number in (0, 1), got {fraction!r}.")
    class_names, paths, labels = scan(root)
    keep, held = common.split_off(len(paths), fraction, seed)
    return common.from_file_lists(
        name,
        class_names,
        ([paths[i] for i in keep], labels[keep]),
        ([paths[i] for i in held], labels[held]),
        image_size,
        verify=verify,
    )


def has_splits(root: str) -> bool:
    """Whether `root` holds `train/` and `test/` sub-directories."""
    return all(os.path.isdir(os.path.join(root, split)) for split in ("train", "test"))
