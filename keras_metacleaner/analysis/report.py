"""Files people act on: the ranked CSV of label issues and the images to look at."""

from __future__ import annotations

import csv
import os
import tempfile

import numpy as np
import tensorflow as tf

from keras_metacleaner.analysis.scoring import LabelScores

#: The CSV's columns, in order; `path` only when the source has files.
CSV_COLUMNS = (
    "index",
    "path",
    "given_label",
    "given_class",
    "predicted_label",
    "predicted_class",
    "alpha_score",
    "label_probability",
    "suspicion",
)


def _number(value: float) -> str:
    return "" if np.isnan(value) else f"{value:.6f}"


def write_label_issues_csv(
    path: str, scores: LabelScores, class_names, paths=None, indices=None
) -> str:
    """Writes every example's scores as CSV, most suspicious first.

    Columns: `CSV_COLUMNS` (`path` left out when `paths` is None);
    `alpha_score` is empty where there is no α (plain classifiers).

    Args:
        path: the CSV file (its directory is created; the file appears
            complete or not at all).
        scores: a `LabelScores` of n examples.
        class_names: one name per class id.
        paths: optional `[n]` file of each example.
        indices: optional `[n]` index of each example in its source (default
            0..n-1).

    Returns:
        `path`.

    Example:

    >>> write_label_issues_csv("label_issues.csv", scores, ["shirt", "coat"])  # doctest: +SKIP
    """
    n = len(scores)
    if paths is not None and len(paths) != n:
        raise ValueError(f"`paths` has {len(paths)} entries for {n} scored examples.")
    indices = np.arange(n) if indices is None else np.asarray(indices)
    columns = [c for c in CSV_COLUMNS if c != "path" or paths is not None]
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", dir=directory, suffix=".csv", delete=False, newline=""
    ) as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for i in scores.ranking():
            row = {
                "index": int(indices[i]),
                "path": None if paths is None else str(paths[i]),
                "given_label": int(scores.given_label[i]),
                "given_class": class_names[scores.given_label[i]],
                "predicted_label": int(scores.predicted_label[i]),
                "predicted_class": class_names[scores.predicted_label[i]],
                "alpha_score": _number(scores.alpha[i]),
                "label_probability": _number(scores.label_probability[i]),
                "suspicion": _number(scores.suspicion[i]),
            }
            writer.writerow([row[c] for c in columns])
    os.replace(f.name, path)
    return path


def gather_images(dataset: tf.data.Dataset, indices) -> np.ndarray:
    """The images at `indices` of a dataset of images or `(image, label)` pairs.

    One streaming pass that stops after the last wanted index; memory holds
    only the wanted images.

    Args:
        dataset: unbatched, in a fixed order.
        indices: positions to fetch.

    Returns:
        `[len(indices), H, W, C]` in the order of `indices`.

    Example:

    >>> ds = tf.data.Dataset.from_tensor_slices(np.arange(5.0).reshape(5, 1, 1, 1))
    >>> gather_images(ds, [3, 1]).ravel().tolist()
    [3.0, 1.0]
    """
    indices = [int(i) for i in np.asarray(indices).reshape(-1)]
    if not indices:
        return np.zeros((0,))
    wanted = {index: None for index in indices}
    last = max(wanted)
    for position, element in enumerate(dataset.take(last + 1).as_numpy_iterator()):
        if position in wanted:
            wanted[position] = element[0] if isinstance(element, tuple) else element
    missing = [i for i, image in wanted.items() if image is None]
    if missing:
        raise ValueError(f"gather_images: the dataset has no element {missing[0]}.")
    return np.stack([wanted[i] for i in indices])
