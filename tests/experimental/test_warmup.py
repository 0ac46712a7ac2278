"""Tests of the experimental warm-up of a weighting (WarmupWeighting + WeightingWarmup)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_case import random_subsets, run_layer_test, tiny_model

from keras_metacleaner.experimental import WarmupWeighting, WeightingWarmup
from keras_metacleaner.layers import DenseWeighting

K, N, D, H = 5, 4, 6, 8


def _features(seed=0):
    return np.random.default_rng(seed).normal(size=(K, N, D)).astype("float32")


def test_warmup_weighting_is_the_plain_mean_until_switched_on():
    layer = WarmupWeighting("fc_fc_sig", subset_size=N, hidden_units=H)
    features = tf.constant(_features())
    with tf.GradientTape() as tape:
        alpha = layer(features)
    np.testing.assert_array_equal(alpha.numpy(), np.ones((K, N)))
    # Off: the inner weighting gets no gradient, so it cannot drift during warm-up.
    gradients = tape.gradient(tf.reduce_sum(alpha), layer.weighting.trainable_weights)
    assert all(g is None or not np.any(g.numpy()) for g in gradients)
    assert [w.name for w in layer.non_trainable_weights] == ["on"]
    layer.on.assign(1.0)
    np.testing.assert_allclose(
        layer(features).numpy(), layer.weighting(features).numpy(), atol=1e-6
    )


def test_warmup_weighting_survives_serialization():
    layer = WarmupWeighting("fc_fc_relu_sig", subset_size=N, hidden_units=H)
    layer(_features())
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored.weighting, DenseWeighting) and restored.weighting.output_relu
    assert restored.alpha_min == 0.5


def test_weighting_warmup_switches_the_weighting_on_after_its_epochs():
    weighting = WarmupWeighting("fc_fc_sig", subset_size=3, hidden_units=8)
    model = tiny_model(weighting, seed=0)
    x, y = random_subsets(4, 3, num_classes=3, seed=0)
    history = model.fit(
        x, y, batch_size=4, epochs=3, verbose=0, callbacks=[WeightingWarmup(2)]
    ).history
    # α = 1 for the first two epochs (std 0), the inner weighting's after.
    assert history["alpha_std"][:2] == [0.0, 0.0] and history["alpha_std"][2] > 0
    assert float(model.cleaner.weighting.on) == 1.0


def test_weighting_warmup_needs_a_warmup_weighting():
    model = tiny_model("fc_fc_sig", seed=0)
    x, y = random_subsets(4, 3, num_classes=3, seed=0)
    with pytest.raises(ValueError, match="WarmupWeighting; this one's is DenseWeighting"):
        model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[WeightingWarmup(1)])


def test_warmup_keeps_the_inner_weightings_losses():
    model = tiny_model(WarmupWeighting("label_posterior", subset_size=3), compile=False)
    assert (model.member_loss_weight, model.subset_loss_weights) == (1.0, "max_alpha")
    model = tiny_model(WarmupWeighting("fc_fc_relu_sig", subset_size=3), compile=False)
    assert (model.member_loss_weight, model.subset_loss_weights) == (0.0, None)


def test_layer_contract(tmp_path):
    run_layer_test(
        WarmupWeighting,
        {"weighting": "fc_fc_sig", "subset_size": N, "hidden_units": H},
        _features(),
        expected_output_shape=(K, N),
        expected_num_trainable_weights=4,  # the inner FC layers; "on" is not trained
        expected_num_non_trainable_weights=1,
        run_training_check=False,
        tmp_path=tmp_path,
    )
