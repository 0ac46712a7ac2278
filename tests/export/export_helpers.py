"""Helpers of the export tests: Fashion-MNIST samples, subsets, Keras reference outputs."""

from __future__ import annotations

import glob
import gzip
import os
import subprocess

import numpy as np

CLASS_NAMES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
SUBSET_SIZE = 2


def _fashion_mnist_file(name: str) -> str | None:
    """A file of the Debian package dataset-fashion-mnist (located, never hard-coded)."""
    try:
        listing = subprocess.run(
            ["dpkg", "-L", "dataset-fashion-mnist"], capture_output=True, text=True, check=True
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        listing = glob.glob("/usr/share/**/*-ubyte.gz", recursive=True)
    return next((path for path in listing if path.endswith(name)), None)


def fashion_mnist_sample(num_examples: int, seed: int = 0):
    """`num_examples` test-split images uint8 `[n, 28, 28, 1]` and int32 labels.

    Falls back to random pixels (labels by brightness) without the Debian package.
    """
    images_file = _fashion_mnist_file("t10k-images-idx3-ubyte.gz")
    labels_file = _fashion_mnist_file("t10k-labels-idx1-ubyte.gz")
    rng = np.random.default_rng(seed)
    if images_file is None or labels_file is None:
        images = rng.integers(0, 256, (num_examples, 28, 28, 1), dtype=np.uint8)
        labels = (images.mean(axis=(1, 2, 3)) / 25.6).astype("int32") % 10
        return images, labels
    with gzip.open(labels_file) as handle:
        labels = np.frombuffer(handle.read(), np.uint8, offset=8).astype("int32")
    with gzip.open(images_file) as handle:
        images = np.frombuffer(handle.read(), np.uint8, offset=16).reshape(-1, 28, 28, 1)
    index = rng.choice(len(labels), num_examples, replace=False)
    return images[index], labels[index]


def same_label_subsets(images, labels, subset_size: int, seed: int = 0):
    """Same-label subsets `[K, N, 28, 28, 1]` float32 and labels `[K]`."""
    rng = np.random.default_rng(seed)
    groups, group_labels = [], []
    for c in np.unique(labels):
        index = rng.permutation(np.flatnonzero(labels == c))
        usable = len(index) // subset_size * subset_size
        groups.append(index[:usable].reshape(-1, subset_size))
        group_labels.append(np.full(usable // subset_size, c, "int32"))
    order = rng.permutation(sum(len(g) for g in groups))
    groups = np.concatenate(groups)[order]
    return images[groups].astype("float32"), np.concatenate(group_labels)[order]


def keras_probabilities(model, images) -> np.ndarray:
    """What the Keras classifier (cleaner removed) says about raw-pixel images."""
    return np.asarray(
        model.inference_model().predict_on_batch(np.asarray(images, "float32")), "float32"
    )


def repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
