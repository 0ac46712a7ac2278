"""Checks and dataset builders shared by the sources."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from keras_metacleaner.data import indexed, preprocessing

AUTOTUNE = tf.data.AUTOTUNE
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def check_path(path: str, what: str, directory: bool | None = None) -> str:
    """Raises a clear error when `path` is missing (or of the wrong kind)."""
    path = os.path.expanduser(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} {path!r} does not exist.")
    if directory is True and not os.path.isdir(path):
        raise NotADirectoryError(f"{what} {path!r} is not a directory.")
    if directory is False and not os.path.isfile(path):
        raise IsADirectoryError(f"{what} {path!r} is not a file.")
    return path


def check_labels(labels, num_classes: int | None, where: str) -> np.ndarray:
    """Validates integer class ids; returns int32. `where` names them in errors."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"{where}: labels must be 1-D class ids, got shape {labels.shape}.")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        if not np.issubdtype(labels.dtype, np.floating) or not np.all(np.mod(labels, 1) == 0):
            raise ValueError(f"{where}: labels must be integers, got dtype {labels.dtype}.")
    labels = labels.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise ValueError(f"{where}: labels must be >= 0, found {labels.min()}.")
    if num_classes is not None and labels.size and labels.max() >= num_classes:
        raise ValueError(
            f"{where}: label {labels.max()} is out of range for {num_classes} classes "
            f"[0, {num_classes})."
        )
    return labels.astype(np.int32)


def check_nonempty(size: int, where: str) -> None:
    if size == 0:
        raise ValueError(f"{where} is empty.")


def check_class_names(names, where: str) -> list[str]:
    """Class names as non-empty one-line strings, no two alike (they name files and outputs)."""
    names = [n.decode() if isinstance(n, bytes) else n for n in names]
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name.strip() or "\n" in name or "\r" in name:
            raise ValueError(
                f"{where}: class name {i} is {name!r}; expected a non-empty name on one line."
            )
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"{where}: class name(s) {twice[:5]} appear more than once.")
    return [str(n) for n in names]


def check_pixels(images: np.ndarray, where: str) -> None:
    """Refuses non-finite pixels and float pixels scaled to [0, 1] instead of raw [0, 255].

    Every backbone normalises raw pixels itself; images already divided by
    255 would reach it as near-black and train at chance. They are refused,
    not rescaled: the same data must mean the same thing in training,
    evaluation and serving, so the fix belongs where the arrays are made.
    """
    if images.size == 0 or not np.issubdtype(images.dtype, np.floating):
        return
    finite = np.isfinite(images)
    if not finite.all():
        bad = np.argwhere(~finite)[0]
        raise ValueError(
            f"{where}: {int((~finite).sum())} pixel(s) are NaN or infinite (first in image "
            f"{bad[0]}, value {images[tuple(bad)]}); expected finite raw pixels in [0, 255]."
        )
    if looks_unit_scaled(images):
        raise ValueError(
            f"{where}: float pixels lie in [0, 1] (max {float(images.max()):.4g}), but images must "
            "be raw pixels in [0, 255] (every backbone normalises them itself); multiply the "
            "arrays by 255 (or save them as uint8)."
        )


def looks_unit_scaled(images) -> bool:
    """Whether float pixels look divided by 255: all in [0, 1], some strictly between.

    All-zero data and binary {0, 1} images are not flagged: nothing tells them
    from very dark raw pixels.
    """
    images = np.asarray(images)
    if images.size == 0 or not np.issubdtype(images.dtype, np.floating):
        return False
    low, high = float(images.min()), float(images.max())
    if low < 0.0 or high > 1.0 or high == 0.0:
        return False
    return bool(np.any((images > 0) & (images < 1)))


def image_size_tuple(image_size) -> tuple[int, int] | None:
    if image_size is None:
        return None
    return preprocessing._size(image_size)


def split_off(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic (train, val) index split of `range(n)`."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"`validation_split` must be in [0, 1), got {fraction!r}.")
    order = np.random.default_rng(seed).permutation(n)
    count = int(round(n * fraction))
    return np.sort(order[count:]), np.sort(order[:count])


def array_source(images: np.ndarray, labels: np.ndarray, image_size=None) -> indexed.IndexedSource:
    """The random-access view of in-memory images (resized on the fly to `image_size`)."""
    size = image_size_tuple(image_size)

    def load_fn(x):
        x = tf.cast(x, tf.float32)
        if size is None:
            return x
        if x.shape.rank == 5:  # [K, N, H, W, C] batches from the grouping
            flat = preprocessing.resize(tf.reshape(x, [-1, *x.shape[2:]]), size)
            return tf.reshape(flat, [*x.shape[:2], *flat.shape[1:]])
        return preprocessing.resize(x, size)

    return indexed.IndexedSource(images, np.asarray(labels, dtype=np.int32), load_fn)


def array_dataset(images: np.ndarray, labels: np.ndarray, image_size=None) -> tf.data.Dataset:
    """An in-memory `(image float32, label int32)` dataset with a random-access view."""
    return array_source(images, labels, image_size).to_dataset()


def as_nhwc(images: np.ndarray, where: str) -> np.ndarray:
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"{where}: images must be [n, h, w] or [n, h, w, c] with c in (1, 3, 4), got shape "
            f"{images.shape}."
        )
    if not (np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)):
        raise ValueError(f"{where}: images must be uint8 or float, got dtype {images.dtype}.")
    return images


TF_FORMATS = ("JPEG", "PNG", "GIF", "BMP")


def probe_image(path: str) -> tuple[int, int, int]:
    """(height, width, channels) of an image file, from its header (read with PIL).

    Raises:
        ValueError: naming the file, when it is not an image TensorFlow can decode.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            width, height = image.size
            channels = 1 if image.mode in ("L", "I", "I;16", "1") else 3
            kind = image.format
    except Exception as error:
        raise ValueError(f"Cannot read image {path!r}: {error}") from error
    if kind not in TF_FORMATS:
        raise ValueError(f"Cannot read image {path!r}: format {kind} is not one of {TF_FORMATS}.")
    return height, width, channels


def readable_files(paths: list[str], verify: str, errors: indexed.DecodeErrors) -> np.ndarray:
    """Positions of the files to keep; the others are recorded in `errors` (once per file).

    `verify="header"` reads every file's header (in threads) and drops what is
    not a JPEG / PNG / GIF / BMP image; `"none"` keeps everything (a file that
    fails later is still skipped and counted by the pipelines).
    """
    if verify == "none" or not paths:
        return np.arange(len(paths))
    from concurrent.futures import ThreadPoolExecutor

    def ok(path):
        try:
            probe_image(path)
        except ValueError:
            return False
        return True

    with ThreadPoolExecutor(max_workers=8) as pool:
        good = np.fromiter(pool.map(ok, paths, chunksize=256), bool, len(paths))
    if not good.all():
        errors.record([p for p, g in zip(paths, good) if not g])
    return np.flatnonzero(good)


def file_loader(image_shape: tuple[int, int, int]):
    """`path -> float32 image` of a fixed shape (decode, channels, resize)."""

    def load_fn(path):
        image = preprocessing.read_image(path, channels=image_shape[2], image_size=image_shape[:2])
        image.set_shape(image_shape)
        return image

    return load_fn


def files_source(
    paths: list[str],
    labels: np.ndarray,
    image_shape: tuple[int, int, int],
    errors: indexed.DecodeErrors,
) -> indexed.IndexedSource:
    """The random-access view of image files decoded to `image_shape`."""
    return indexed.IndexedSource(
        encode_paths(paths),
        np.asarray(labels, dtype=np.int32),
        file_loader(image_shape),
        is_files=True,
        errors=errors,
        image_shape=tuple(image_shape),
    )


def files_dataset(
    paths: list[str],
    labels: np.ndarray,
    image_shape: tuple[int, int, int],
    errors: indexed.DecodeErrors,
) -> tf.data.Dataset:
    """`(image, label)` from image files; unreadable files are skipped and counted."""
    return files_source(paths, labels, image_shape, errors).to_dataset()


def encode_paths(paths) -> np.ndarray:
    return np.array([os.fsencode(p) for p in paths], dtype=object)


def list_images(directory: str) -> list[str]:
    """Image files directly under `directory`, sorted."""
    return sorted(
        os.path.join(directory, name)
        for name in os.listdir(directory)
        if name.lower().endswith(IMAGE_EXTENSIONS)
    )


def read_lines(path: str, what: str) -> list[str]:
    path = check_path(path, what, directory=False)
    with open(path, encoding="utf-8") as handle:
        return [line.strip() for line in handle if line.strip()]


VERIFY = ("header", "none")


def verify_option(options: dict, where: str) -> str:
    """Pops `verify=header|none` from a file source's options."""
    verify = options.pop("verify", "header")
    if verify not in VERIFY:
        raise ValueError(f"{where}: verify={verify!r}; expected one of {list(VERIFY)}.")
    return verify


def from_file_lists(
    name: str,
    class_names: list[str],
    train: tuple[list[str], np.ndarray],
    test: tuple[list[str], np.ndarray],
    image_size=None,
    extra_splits: dict | None = None,
    train_clean_labels: np.ndarray | None = None,
    verify: str = "header",
):
    """Builds a `LoadedData` from lists of image files and their labels.

    Files that are not readable images are left out at load (with
    `verify="header"`) and counted once each in `info.skipped_files`, so the
    splits have their exact sizes. The image shape is `image_size` (or the
    first readable training image's size), with 1 channel if that image is
    grayscale, else 3; every image is decoded to it.
    """
    from keras_metacleaner.data.info import DatasetInfo
    from keras_metacleaner.data.loaded import LoadedData

    class_names = check_class_names(class_names, f"{name} class names")
    num_classes = len(class_names)
    errors = indexed.DecodeErrors()

    def readable(paths, labels, split, clean=None):
        labels = check_labels(labels, num_classes, f"{name} {split}")
        paths = list(paths)
        if len(paths) != labels.size:
            raise ValueError(f"{name} {split}: {len(paths)} files but {labels.size} labels.")
        check_nonempty(len(paths), f"{name}: the {split} split")
        keep = readable_files(paths, verify, errors)
        check_nonempty(keep.size, f"{name}: the {split} split after skipping unreadable files")
        clean = None if clean is None else np.asarray(clean, np.int32)[keep]
        return [paths[i] for i in keep], labels[keep], clean

    train_paths, train_labels, train_clean_labels = readable(*train, "train", train_clean_labels)
    test_paths, test_labels, _ = readable(*test, "test")
    extra = {split: readable(*lists, split)[:2] for split, lists in (extra_splits or {}).items()}
    shape = None
    for path in train_paths:  # a corrupt first file (with verify=none) must not stop the load
        try:
            shape = probe_image(path)
            break
        except ValueError:
            errors.record([path])
    if shape is None:
        raise ValueError(f"{name}: none of the {len(train_paths)} training files is readable.")
    height, width, channels = shape
    size = image_size_tuple(image_size) or (height, width)
    image_shape = (*size, channels)
    splits = {
        split: files_dataset(paths, labels, image_shape, errors)
        for split, (paths, labels) in extra.items()
    }
    info = DatasetInfo(
        name=name,
        num_classes=num_classes,
        class_names=list(class_names),
        image_shape=image_shape,
        train_size=len(train_paths),
        test_size=len(test_paths),
        train_labels=train_labels,
        train_clean_labels=train_clean_labels,
        splits=splits,
        decode_errors=errors,
    )
    return LoadedData(
        info,
        files_dataset(test_paths, test_labels, image_shape, errors),
        train_labels,
        view=files_source(train_paths, train_labels, image_shape, errors),
        clean_labels=train_clean_labels,
    )
