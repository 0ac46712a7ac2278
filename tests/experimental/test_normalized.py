"""Tests of the experimental NormalizedLossMetaCleanerModel."""

import functools

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_case import tiny_model, two_replica_strategy

from keras_metacleaner.experimental import NormalizedLossMetaCleanerModel

N, C = 3, 3
normalized_model = functools.partial(tiny_model, model_class=NormalizedLossMetaCleanerModel)


def test_member_weights_are_n_alpha_over_the_subsets_sum():
    model = normalized_model("label_confidence", seed=0, normalize_member_weights=True)
    logits = np.random.default_rng(0).normal(size=(1, N, C)).astype("float32")
    labels = np.array([1])
    alpha = np.array([[0.5, 0.25, 0.0]], "float32")
    probabilities = keras.ops.convert_to_numpy(keras.ops.softmax(logits))[0]
    losses = -np.log(probabilities[:, 1])
    weights = N * alpha[0] / alpha.sum()
    loss = model._member_loss(labels, alpha, logits, None)
    assert float(loss) == pytest.approx(float(np.sum(weights * losses) / N), rel=1e-5)


def test_normalized_subset_weights_average_one_over_the_batch():
    model = normalized_model(
        "label_confidence", seed=0, subset_loss_weights="max_alpha", normalize_subset_weights=True
    )
    alpha = np.array([[0.05, 0.05, 0.05], [1.0, 0.45, 0.05], [0.5, 0.2, 0.1]], "float32")
    weights = keras.ops.convert_to_numpy(model._subset_weights(alpha, None))
    np.testing.assert_allclose(weights, np.array([0.05, 1.0, 0.5]) / (1.55 / 3), rtol=1e-6)


def test_normalized_subset_weights_divide_by_the_global_batch_mean():
    strategy = two_replica_strategy()
    kwargs = {"subset_loss_weights": "max_alpha", "normalize_subset_weights": True}
    single = normalized_model("label_confidence", **kwargs)
    with strategy.scope():
        mirrored = normalized_model("label_confidence", **kwargs)
    alpha = {0: [[1.0, 0.5, 0.1], [0.9, 0.2, 0.1]], 1: [[0.2, 0.1, 0.1], [0.3, 0.3, 0.05]]}
    per_replica = strategy.experimental_distribute_values_from_function(
        lambda context: tf.constant(alpha[context.replica_id_in_sync_group])
    )
    weights = strategy.run(lambda a: mirrored._subset_weights(a, None), args=(per_replica,))
    actual = np.concatenate([w.numpy() for w in strategy.experimental_local_results(weights)])
    expected = single._subset_weights(tf.constant(alpha[0] + alpha[1]), None).numpy()
    np.testing.assert_allclose(actual, expected, rtol=1e-6)
    np.testing.assert_allclose(expected, np.array([1.0, 0.9, 0.2, 0.3]) / 0.6, rtol=1e-6)


def test_config_round_trip_keeps_the_options():
    model = normalized_model("label_confidence", normalize_member_weights=True, compile=False)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    assert type(clone) is NormalizedLossMetaCleanerModel
    assert clone.normalize_member_weights and not clone.normalize_subset_weights
