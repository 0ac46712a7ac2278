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
STEPS, CHECK, K, N, C = 4, 2, 4, 4, 3


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
    single = scaling.train(tf.distribute.get_strategy(), x, y, C, CHECK, learning_rate=0.2)
    mirrored = scaling.train(strategy, x, y, C, CHECK, learning_rate=0.2)
    # The comparison means something only if training moved the weights.
    assert single["max_abs_update"] > 1e-2
    assert single["images"] == mirrored["images"] == (STEPS - CHECK) * K * N
    for point in ("checked", "final"):
        result = scaling.compare(mirrored[point], single[point])
        assert result["agree"], (point, result)
        assert result["max_abs_diff"] < 1e-4


def test_the_comparison_sees_different_training():
    scaling = _scaling()
    x, y = _batches()
    default = tf.distribute.get_strategy()
    single = scaling.train(default, x, y, C, CHECK, learning_rate=0.2)["checked"]
    other = scaling.train(default, x, (y + 1) % C, C, CHECK, learning_rate=0.2)["checked"]
    result = scaling.compare(other, single)
    assert not result["agree"] and result["max_abs_diff"] > 1e-3
    np.testing.assert_equal(scaling.compare(single, single)["max_abs_diff"], 0.0)


@pytest.mark.parametrize("check_steps", [0, STEPS])
def test_train_needs_steps_before_and_after_the_check(check_steps):
    scaling = _scaling()
    x, y = _batches()
    with pytest.raises(ValueError, match="check_steps"):
        scaling.train(tf.distribute.get_strategy(), x, y, C, check_steps)
