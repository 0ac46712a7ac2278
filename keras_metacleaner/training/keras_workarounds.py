"""Every patch of Keras internals this project needs, in one place.

Each workaround names the upstream issue it waits for; a test in
tests/training/test_keras_workarounds.py reproduces the upstream failure
without the patch, so it starts failing (and the patch can go) the day
Keras fixes it. Both are needed only under `MultiWorkerMirroredStrategy`.
"""

from __future__ import annotations

import contextlib

import keras
import tensorflow as tf

#: workaround -> the upstream issues it waits for.
UPSTREAM = {
    "multi_worker_reduction": ("keras-team/keras#20585", "tensorflow/tensorflow#72388"),
    "build_before_multi_worker_fit": ("keras-team/keras#20585",),
}


@contextlib.contextmanager
def multi_worker_reduction():
    """Lets Keras 3 reduce scalar logs under multi-worker strategies.

    Keras' TF trainer reduces every per-replica log value with
    `strategy.reduce("MEAN", v, axis=0)` when the strategy is a multi-worker
    `CollectiveAllReduceStrategy`; for the scalar metric results of a
    `train_step` that fails ("Invalid reduction dimension 0 for input with 0
    dimensions", keras-team/keras#20585, tensorflow/tensorflow#72388). Metric
    variables are all-reduced on every update, so each replica already holds
    the global value and the local mean Keras uses for single-worker
    strategies is exact. Inside this context Keras takes that path.

    Example:

    >>> with multi_worker_reduction():
    ...     pass
    """
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original = getattr(tf_trainer, "_collective_all_reduce_multi_worker", None)
    if original is None:  # a Keras without the code path
        yield
        return
    tf_trainer._collective_all_reduce_multi_worker = lambda strategy: False
    try:
        yield
    finally:
        tf_trainer._collective_all_reduce_multi_worker = original


def build_before_multi_worker_fit(
    model: keras.Model, dataset: tf.data.Dataset, strategy: tf.distribute.Strategy
) -> None:
    """Builds metrics, loss and optimizer state from a local batch, then skips Keras' own build.

    Under MultiWorkerMirroredStrategy, Keras 3's `fit` / `evaluate` first
    MEAN-reduces a distributed batch to build state symbolically, which fails
    ("Attempt to convert a value (PerReplica...)", keras-team/keras#20585).
    Building here from an undistributed batch makes that step unnecessary.

    Args:
        model: a compiled model.
        dataset: the (undistributed) training dataset.
        strategy: the strategy whose scope holds the model.

    Example:

    >>> build_before_multi_worker_fit  # doctest: +ELLIPSIS
    <function build_before_multi_worker_fit at ...>
    """
    for batch in dataset.take(1):
        with strategy.scope():
            model._symbolic_build(data_batch=batch)
            if model.optimizer is not None and not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
