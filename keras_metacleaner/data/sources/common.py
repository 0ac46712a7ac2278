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


def array_dataset(images: np.ndarray, labels: np.ndarray, image_size=None) -> tf.data.Dataset:
    """An in-memory `(image float32, label int32)` dataset with a random-access view."""
    size = image_size_tuple(image_size)

    def load_fn(x):
        x = tf.cast(x, tf.float32)
        if size is None:
            return x
        if x.shape.rank == 5:  # [K, N, H, W, C] batches from the grouping
            flat = preprocessing.resize(tf.reshape(x, [-1, *x.shape[2:]]), size)
            return tf.reshape(flat, [*x.shape[:2], *flat.shape[1:]])
        return preprocessing.resize(x, size)

    labels = np.asarray(labels, dtype=np.int32)
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    ds = ds.map(lambda x, y: (load_fn(x), y), num_parallel_calls=AUTOTUNE)
    return indexed.attach(ds, indexed.IndexedSource(images, labels, load_fn))


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


def probe_image(path: str) -> tuple[int, int, int]:
    """(height, width, channels) of an image file, read with PIL."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            width, height = image.size
            channels = 1 if image.mode in ("L", "I", "I;16", "1") else 3
    except Exception as error:
        raise ValueError(f"Cannot read image {path!r}: {error}") from error
    return height, width, channels


def file_loader(image_shape: tuple[int, int, int]):
    """`path -> float32 image` of a fixed shape (decode, channels, resize)."""

    def load_fn(path):
        image = preprocessing.read_image(path, channels=image_shape[2], image_size=image_shape[:2])
        image.set_shape(image_shape)
        return image

    return load_fn


def files_dataset(
    paths: list[str],
    labels: np.ndarray,
    image_shape: tuple[int, int, int],
    errors: indexed.DecodeErrors,
) -> tf.data.Dataset:
    """`(image, label)` from image files; unreadable files are skipped and counted.

    A sentinel element after the last file lets a failure at the very end
    be noticed too.
    """
    n = len(paths)
    labels = np.asarray(labels, dtype=np.int32)
    load_fn = file_loader(image_shape)
    ds = tf.data.Dataset.from_tensor_slices(
        (np.arange(n, dtype=np.int64), encode_paths(paths), labels)
    )
    ds = ds.map(
        lambda position, path, label: (position, position, (position, load_fn(path), label)),
        num_parallel_calls=AUTOTUNE,
    )
    empty = tf.zeros(image_shape, tf.float32)
    sentinel = (np.int64(n), np.int64(n), (np.int64(n), empty, np.int32(0)))
    ds = ds.concatenate(tf.data.Dataset.from_tensors(sentinel))

    def report(start, stop, hint):
        del hint
        errors.record([paths[i] for i in range(start, min(stop, n))])

    ds = indexed.skip_unreadable(ds, report)
    ds = ds.filter(lambda position, image, label: position < n)
    ds = ds.map(lambda position, image, label: (image, label))
    source = indexed.IndexedSource(
        encode_paths(paths), labels, load_fn, is_files=True, errors=errors
    )
    return indexed.attach(ds, source)


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


def from_file_lists(
    name: str,
    class_names: list[str],
    train: tuple[list[str], np.ndarray],
    test: tuple[list[str], np.ndarray],
    image_size=None,
    validation_split: float = 0.0,
    seed: int = 0,
    extra_splits: dict | None = None,
    train_clean_labels: np.ndarray | None = None,
):
    """Builds `(train, test, info)` from lists of image files and their labels.

    The image shape is `image_size` (or the first training image's size), with
    1 channel if that image is grayscale, else 3; every image is decoded to
    it. Unreadable files are skipped and counted in `info.decode_errors`.
    """
    from keras_metacleaner.data.info import DatasetInfo

    num_classes = len(class_names)
    train_paths, train_labels = list(train[0]), check_labels(train[1], num_classes, f"{name} train")
    test_paths, test_labels = list(test[0]), check_labels(test[1], num_classes, f"{name} test")
    check_nonempty(len(train_paths), f"{name}: the train split")
    check_nonempty(len(test_paths), f"{name}: the test split")
    height, width, channels = probe_image(train_paths[0])
    size = image_size_tuple(image_size) or (height, width)
    image_shape = (*size, channels)
    errors = indexed.DecodeErrors()

    splits = {}
    for split, (paths, labels) in (extra_splits or {}).items():
        labels = check_labels(labels, num_classes, f"{name} {split}")
        check_nonempty(len(paths), f"{name}: the {split} split")
        splits[split] = files_dataset(list(paths), labels, image_shape, errors)
    if validation_split:
        keep, held = split_off(len(train_paths), validation_split, seed)
        splits["val"] = files_dataset(
            [train_paths[i] for i in held], train_labels[held], image_shape, errors
        )
        train_paths, train_labels = [train_paths[i] for i in keep], train_labels[keep]
        if train_clean_labels is not None:
            train_clean_labels = train_clean_labels[keep]
        check_nonempty(len(train_paths), f"{name}: the train split after validation_split")

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
    return (
        files_dataset(train_paths, train_labels, image_shape, errors),
        files_dataset(test_paths, test_labels, image_shape, errors),
        info,
    )
