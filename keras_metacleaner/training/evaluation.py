"""Evaluation of a trained classifier: top-k, per-class accuracy, confusion matrix."""

from __future__ import annotations

import os
import tempfile

import keras
import numpy as np
import tensorflow as tf


def load_classifier(path: str):
    """Loads `model.keras` or a SavedModel directory as a callable image -> probabilities.

    Args:
        path: a `.keras` file (a `MetaCleanerModel` or a plain classifier) or
            a SavedModel directory (e.g. `exports/fashion_mnist/1`) with a
            `serving_default` signature taking float images.

    Returns:
        A function `images [B, H, W, C] float32 -> probabilities [B, C]` (NumPy).

    Example:

    >>> predict = load_classifier("runs/quickstart/metacleaner/model.keras")  # doctest: +SKIP
    """
    if os.path.isfile(path) and path.endswith(".keras"):
        model = keras.saving.load_model(path)
        return lambda images: np.asarray(model.predict_on_batch(images))
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "saved_model.pb")):
        loaded = tf.saved_model.load(path)
        signature = loaded.signatures["serving_default"]
        ((input_name, spec),) = signature.structured_input_signature[1].items()

        def predict(images):
            outputs = signature(**{input_name: tf.cast(images, spec.dtype)})
            probs = [v for k, v in outputs.items() if "prob" in k] or list(outputs.values())
            return probs[0].numpy()

        return predict
    raise ValueError(
        f"model={path!r}: expected a .keras file or a SavedModel directory (with saved_model.pb)."
    )


def evaluate_classifier(
    predict, dataset: tf.data.Dataset, num_classes: int, batch_size: int = 256
) -> dict:
    """Top-1, top-5, per-class accuracy and the confusion matrix.

    Args:
        predict: `images -> probabilities`, e.g. from `load_classifier`.
        dataset: unbatched `(image, label)` dataset.
        num_classes: number of classes.
        batch_size: images per forward pass.

    Returns:
        dict with `top1`, `top5` (top-min(5, C)), `num_examples`,
        `per_class_accuracy` (None for classes absent from the data) and
        `confusion_matrix` (`[true][predicted]` counts).

    Example:

    >>> ds = tf.data.Dataset.from_tensor_slices((np.zeros((2, 1)), [0, 1]))
    >>> evaluate_classifier(lambda x: np.tile([[0.9, 0.1]], (len(x), 1)), ds, 2)["top1"]
    0.5
    """
    confusion = np.zeros((num_classes, num_classes), np.int64)
    k = min(5, num_classes)
    top_k_hits = 0
    for images, labels in dataset.batch(batch_size).as_numpy_iterator():
        probs = np.asarray(predict(images))
        if probs.shape[-1] != num_classes:
            raise ValueError(
                f"The model predicts {probs.shape[-1]} classes but the dataset has {num_classes}."
            )
        predicted = probs.argmax(-1)
        np.add.at(confusion, (labels.astype(np.int64), predicted), 1)
        top = np.argsort(-probs, axis=-1)[:, :k]
        top_k_hits += int(np.sum(top == labels[:, None]))
    total = int(confusion.sum())
    if total == 0:
        raise ValueError("The evaluation dataset is empty.")
    support = confusion.sum(axis=1)
    per_class = [
        float(confusion[c, c] / support[c]) if support[c] else None for c in range(num_classes)
    ]
    return {
        "num_examples": total,
        "top1": float(np.trace(confusion) / total),
        "top5": float(top_k_hits / total),
        "top_k": k,
        "per_class_accuracy": per_class,
        "confusion_matrix": confusion.tolist(),
    }


def save_confusion_png(confusion, class_names: list[str], path: str, title: str = "") -> str:
    """Draws a row-normalised confusion matrix to a PNG (matplotlib, Agg), atomically.

    Args:
        confusion: `[C, C]` counts, rows true classes.
        class_names: C names for the axes.
        path: the `.png` to write.
        title: figure title.

    Returns:
        `path`.

    Example:

    >>> save_confusion_png([[3, 1], [0, 4]], ["a", "b"], "/tmp/cm.png")  # doctest: +SKIP
    '/tmp/cm.png'
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    confusion = np.asarray(confusion, np.float64)
    rows = confusion.sum(axis=1, keepdims=True)
    normalised = np.divide(confusion, rows, out=np.zeros_like(confusion), where=rows > 0)
    n = len(class_names)
    size = max(4.0, min(0.45 * n + 2, 40.0))
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046)
    if n <= 50:
        ax.set_xticks(range(n), class_names, rotation=90, fontsize=8)
        ax.set_yticks(range(n), class_names, fontsize=8)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(
                    j,
                    i,
                    f"{normalised[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if normalised[i, j] > 0.5 else "black",
                )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".png", dir=directory)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=100)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
