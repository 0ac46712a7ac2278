"""MirroredStrategy on 2 logical CPUs: scaling.py's training ends with one device's weights.

Several `fit` steps of the default MetaCleaner method on the same global
batches: the two replicas each take half of every batch's K subsets, and the
all-reduced update must be the one device's update (up to float32 rounding).
The two logical CPUs are those of tests/conftest.py.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
import tensorflow as tf
from test_case import random_subsets, two_replica_strategy

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STEPS, K, N, C = 4, 4, 4, 3


def _scaling():
    spec = importlib.util.spec_from_file_location(
        "scaling", os.path.join(ROOT, "benchmarks", "scaling.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _batches(seed=31):
    x, y = random_subsets(STEPS * K, N, image_shape=(8, 8, 1), num_classes=C, seed=seed)
    return x.reshape(STEPS, K, N, 8, 8, 1), y.reshape(STEPS, K)


def test_two_replicas_end_with_the_weights_of_one_device():
    scaling = _scaling()
    assert scaling.SUBSET_SIZE == N
    x, y = _batches()
    strategy = two_replica_strategy()
    assert strategy.num_replicas_in_sync == 2
    single, timing = scaling.train(tf.distribute.get_strategy(), x, y, C, learning_rate=0.2)
    mirrored, mirrored_timing = scaling.train(strategy, x, y, C, learning_rate=0.2)
    # The comparison means something only if training moved the weights.
    assert timing["max_abs_update"] > 1e-2
    assert timing["images"] == mirrored_timing["images"] == STEPS // 2 * K * N
    result = scaling.compare(mirrored, single)
    assert result["agree"], result
    assert result["max_abs_diff"] < 1e-4


def test_the_comparison_sees_different_training():
    scaling = _scaling()
    x, y = _batches()
    single, _ = scaling.train(tf.distribute.get_strategy(), x, y, C, learning_rate=0.2)
    # One global batch in a different order of subsets is the same sum; other labels are not.
    other, _ = scaling.train(tf.distribute.get_strategy(), x, (y + 1) % C, C, learning_rate=0.2)
    result = scaling.compare(other, single)
    assert not result["agree"] and result["max_abs_diff"] > 1e-3
    np.testing.assert_equal(scaling.compare(single, single)["max_abs_diff"], 0.0)


@pytest.mark.parametrize("steps", [3, 0])
def test_train_needs_an_even_number_of_steps(steps):
    scaling = _scaling()
    x, y = _batches()
    with pytest.raises(ValueError, match="even number of steps"):
        scaling.train(tf.distribute.get_strategy(), x[:steps], y[:steps], C)
