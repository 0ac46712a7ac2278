"""`load(spec)`: the dataset spec strings shared with `tools/train.py --dataset`."""

from __future__ import annotations

import logging
import urllib.parse

from keras_metacleaner.data.sources import (
    clothing1m,
    fashion_mnist,
    folder,
    food101n,
    npz,
    tfds_source,
)

logger = logging.getLogger(__name__)

SOURCES = ("fashion_mnist", "npz", "folder", "tfds", "food101n", "clothing1m")


def parse_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    """Splits `"kind:target?key=value&..."` into `(kind, target, options)`.

    Args:
        spec: e.g. `"fashion_mnist"`, `"npz:/data/x.npz"`,
            `"tfds:cifar10_n?label=worse_label"`.

    Returns:
        `(kind, target, options)`; `target` is `""` when absent.

    Example:

    >>> parse_spec("tfds:cifar10_n?label=worse_label")
    ('tfds', 'cifar10_n', {'label': 'worse_label'})
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"Dataset spec must be a non-empty string, got {spec!r}.")
    spec = spec.strip()
    body, _, query = spec.partition("?")
    kind, _, target = body.partition(":")
    if kind not in SOURCES:
        raise ValueError(
            f"Unknown dataset spec {spec!r}: source {kind!r} is not one of {list(SOURCES)} "
            "(e.g. fashion_mnist, npz:PATH, folder:PATH, tfds:NAME?label=KEY, food101n:ROOT, "
            "clothing1m:ROOT)."
        )
    try:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as error:
        raise ValueError(f"Dataset spec {spec!r}: cannot parse options {query!r}.") from error
    options = dict(pairs)
    if len(options) != len(pairs):
        raise ValueError(f"Dataset spec {spec!r}: an option is given twice.")
    if kind != "fashion_mnist" and not target:
        raise ValueError(f"Dataset spec {spec!r}: {kind} needs a target, e.g. {kind}:PATH.")
    if kind == "fashion_mnist" and target:
        raise ValueError(f"Dataset spec {spec!r}: fashion_mnist takes no target (use ?dir=DIR).")
    return kind, target, options


def load(spec: str, *, image_size=None, validation_split: float = 0.0, seed: int = 0):
    """Loads a dataset by spec.

    Args:
        spec: `fashion_mnist`, `npz:PATH`, `folder:PATH`,
            `tfds:NAME?label=KEY&...`, `food101n:ROOT[?test=ROOT]` or
            `clothing1m:ROOT`.
        image_size: int or `(height, width)` to resize every image to, or
            `None` to keep the source's size.
        validation_split: fraction of the training data held out as
            `info.splits["val"]` (for `folder:` without `test/`, the test split).
        seed: seed of the held-out draw.

    Returns:
        `(train, test, info)`: unshuffled, unbatched `tf.data.Dataset`s of
        `(image float32 [H, W, C] raw pixels, label int32)` and a
        `DatasetInfo`.

    Example:

    >>> train, test, info = load("fashion_mnist")
    >>> info.num_classes, info.image_shape
    (10, (28, 28, 1))
    """
    kind, target, options = parse_spec(spec)
    if not isinstance(validation_split, (int, float)) or not 0.0 <= validation_split < 1.0:
        raise ValueError(f"`validation_split` must be in [0, 1), got {validation_split!r}.")
    kwargs = dict(image_size=image_size, validation_split=validation_split, seed=seed)
    if kind == "fashion_mnist":
        result = fashion_mnist.load(options, **kwargs)
    else:
        module = {
            "npz": npz,
            "folder": folder,
            "tfds": tfds_source,
            "food101n": food101n,
            "clothing1m": clothing1m,
        }[kind]
        result = module.load(target, options, **kwargs)
    info = result[2]
    logger.info(
        "Loaded %s: %d train / %d test images of shape %s, %d classes.",
        spec,
        info.train_size,
        info.test_size,
        info.image_shape,
        info.num_classes,
    )
    return result
