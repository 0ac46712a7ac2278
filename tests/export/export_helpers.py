"""Helpers of the export tests: subset size, Keras reference outputs, the repository root.

Fashion-MNIST samples and same-label subsets come from `tests/test_case.py`.
"""

from __future__ import annotations

import os

import numpy as np

SUBSET_SIZE = 2


def keras_probabilities(model, images) -> np.ndarray:
    """What the Keras classifier (cleaner removed) says about raw-pixel images."""
    return np.asarray(
        model.inference_model().predict_on_batch(np.asarray(images, "float32")), "float32"
    )


def repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
