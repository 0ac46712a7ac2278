"""Each Keras workaround: the upstream failure still happens without it (else remove it)."""

import inspect

import pytest
import tensorflow as tf
from keras.src.backend.tensorflow import trainer as tf_trainer

from keras_metacleaner.training import keras_workarounds


def test_multi_worker_reduction_is_still_needed(monkeypatch):
    """keras-team/keras#20585: scalar logs reduced with axis=0 under multi-worker."""
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    value = strategy.run(lambda: tf.constant(1.0))
    # As Keras behaves in a multi-worker cluster (predicate forced, one process here):
    monkeypatch.setattr(tf_trainer, "_collective_all_reduce_multi_worker", lambda s: True)
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError)):
        tf_trainer.reduce_per_replica({"loss": value}, strategy, "auto")
    # The workaround takes the single-worker path, which is exact for all-reduced metrics.
    with keras_workarounds.multi_worker_reduction():
        reduced = tf_trainer.reduce_per_replica({"loss": value}, strategy, "auto")
    assert float(reduced["loss"]) == 1.0


def test_build_before_multi_worker_fit_is_still_needed():
    """keras-team/keras#20585: Keras MEAN-reduces a distributed batch to build symbolically.

    The failure needs two worker processes (tests/tools/test_train_processes.py runs
    one); here: Keras still takes that path, so the workaround still has a job.
    """
    source = inspect.getsource(tf_trainer.TensorFlowTrainer._maybe_symbolic_build)
    assert "distribute_strategy.reduce" in source and '"MEAN"' in source
    assert set(keras_workarounds.UPSTREAM) == {
        "multi_worker_reduction",
        "build_before_multi_worker_fit",
    }
