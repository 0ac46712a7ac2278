"""`load(spec)`: the dataset spec strings shared with `tools/train.py --dataset`."""

from __future__ import annotations

import logging
import warnings

from keras_metacleaner.data.loaded import LoadedData
from keras_metacleaner.data.registry import SOURCES, parse_spec

logger = logging.getLogger(__name__)

__all__ = ["SOURCES", "load", "parse_spec"]


def load(spec: str, *, image_size=None, seed: int = 0, validation_split=None) -> LoadedData:
    """Loads a dataset by spec, refusing bad data before anything trains.

    Args:
        spec: `fashion_mnist`, `npz:PATH`, `folder:PATH[?test_fraction=F]`,
            `tfds:NAME?label=KEY&...`, `food101n:ROOT[?test=ROOT]` or
            `clothing1m:ROOT` (the sources of `registry.SOURCES`).
        image_size: int or `(height, width)` to resize every image to, or
            `None` to keep the source's size.
        seed: seed of any draw a source makes (e.g. `folder:`'s test split).
        validation_split: deprecated. Hold out a validation split after
            noise injection with `LoadedData.split_validation` instead.

    Returns:
        A `LoadedData`: it unpacks as `train, test, info` (unshuffled,
        unbatched datasets of `(image float32 [H, W, C] raw pixels, label
        int32)` and a `DatasetInfo`) and carries `labels`, `clean_labels`,
        `paths` and the fast view that `group_by_class` uses.

    Raises:
        ValueError: naming the spec or file and what was expected, for bad
            data (missing arrays, labels out of range, x / y length mismatch,
            empty splits, wrong image rank, non-finite pixels, float pixels in
            [0, 1], bad class names, a file that is not an .npz, ...).

    Example:

    >>> train, test, info = load("fashion_mnist")
    >>> info.num_classes, info.image_shape
    (10, (28, 28, 1))
    """
    kind, target, options = parse_spec(spec)
    if validation_split is not None and validation_split != 0:
        return _load_with_validation_split(spec, kind, image_size, seed, validation_split)
    loaded = SOURCES[kind].load_fn()(target, options, image_size=image_size, seed=seed)
    info = loaded.info
    logger.info(
        "Loaded %s: %d train / %d test images of shape %s, %d classes%s.",
        spec,
        info.train_size,
        info.test_size,
        info.image_shape,
        info.num_classes,
        f", {info.skipped_files} unreadable file(s) skipped" if info.skipped_files else "",
    )
    return loaded


def _load_with_validation_split(spec, kind, image_size, seed, fraction) -> LoadedData:
    """The old `validation_split=` behaviour: a split cut before any noise, in `info.splits`."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise ValueError(f"`validation_split` must be in [0, 1), got {fraction!r}.")
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"`validation_split` must be in [0, 1), got {fraction!r}.")
    warnings.warn(
        "load(validation_split=) is deprecated: cut a validation split after noise injection "
        "with LoadedData.split_validation(fraction, seed) (or, for a folder without train/ and "
        "test/, hold out its test split with folder:PATH?test_fraction=F).",
        DeprecationWarning,
        stacklevel=3,
    )
    if kind == "folder":
        from keras_metacleaner.data.sources import folder

        _, target, options = parse_spec(spec)
        if not folder.has_splits(target) and "test_fraction" not in options:
            return load(
                f"{spec}{'&' if '?' in spec else '?'}test_fraction={fraction}",
                image_size=image_size,
                seed=seed,
            )
    loaded = load(spec, image_size=image_size, seed=seed)
    kept, held = loaded.split_validation(fraction, seed)
    kept.info.splits = {**kept.info.splits, "val": held.train}
    return kept
