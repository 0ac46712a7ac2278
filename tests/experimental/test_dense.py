"""Tests of the experimental remedies of the paper's FC weighting."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops
from test_case import run_layer_test

from keras_metacleaner.experimental import RemedyDenseWeighting
from keras_metacleaner.layers import DenseWeighting

K, N, D, H = 5, 4, 6, 8


def _features(seed=0, scale=1.0):
    return np.random.default_rng(seed).normal(size=(K, N, D)).astype("float32") * scale


def _dense_alpha_and_feature_gradient(**kwargs):
    layer = RemedyDenseWeighting(subset_size=N, hidden_units=H, **kwargs)
    features = tf.constant(_features())
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(features)
        alpha = layer(features)
        total = tf.reduce_sum(alpha * tf.range(N, dtype=alpha.dtype))
    return layer, alpha.numpy(), tape.gradient(total, features), tape, total


def test_remedy_defaults_are_the_papers_layer():
    layer = RemedyDenseWeighting(subset_size=N, hidden_units=H)
    assert layer.alpha_min == 0.5
    assert (layer.negative_slope, layer.output_bias, layer.temperature) == (0.0, 0.0, 1.0)
    assert not layer.normalize_inputs and not layer.stop_input_gradient


def test_dense_negative_slope_keeps_a_gradient_below_zero():
    for slope, alive in ((0.0, False), (0.1, True)):
        layer = RemedyDenseWeighting(subset_size=N, hidden_units=H, negative_slope=slope)
        layer.build((None, N, D))
        layer.output_dense.bias.assign(np.full((N,), -100.0, "float32"))
        with tf.GradientTape() as tape:
            total = tf.reduce_sum(layer(tf.constant(_features())))
        gradient = tape.gradient(total, layer.output_dense.bias)
        # A closed ReLU is the absorbing state of the paper's layer; a leaky
        # one still tells the bias which way is up.
        assert (float(tf.reduce_max(tf.abs(gradient))) > 0) == alive
    assert layer.alpha_min == 0.0


def test_dense_output_bias_and_temperature_shape_the_first_alpha():
    layer = RemedyDenseWeighting(subset_size=N, hidden_units=H, output_bias=50.0)
    np.testing.assert_allclose(ops.convert_to_numpy(layer(_features())), 1.0, atol=1e-6)
    hot = RemedyDenseWeighting(subset_size=N, hidden_units=H, output_bias=1.0, temperature=0.5)
    hot.build((None, N, D))
    hot.hidden.kernel.assign(np.zeros((N * D, H), "float32"))
    np.testing.assert_allclose(
        ops.convert_to_numpy(hot(_features())), 1 / (1 + np.exp(-2.0)), rtol=1e-5
    )


def test_dense_normalized_inputs_ignore_the_feature_scale():
    layer = RemedyDenseWeighting(
        subset_size=N, hidden_units=H, output_relu=False, normalize_inputs=True
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer(_features())),
        ops.convert_to_numpy(layer(_features(scale=25.0))),
        rtol=1e-4,
    )


def test_dense_stop_input_gradient_cuts_only_the_backbone_path():
    layer, _, feature_gradient, tape, total = _dense_alpha_and_feature_gradient(
        output_relu=False, stop_input_gradient=True
    )
    assert feature_gradient is None
    weight_gradients = tape.gradient(total, layer.trainable_weights)
    assert all(g is not None for g in weight_gradients)
    _, _, open_gradient, _, _ = _dense_alpha_and_feature_gradient(output_relu=False)
    assert float(np.abs(open_gradient.numpy()).max()) > 0


def test_dense_options_survive_serialization(tmp_path):
    kwargs = dict(
        subset_size=N,
        hidden_units=H,
        negative_slope=0.1,
        output_bias=1.0,
        normalize_inputs=True,
        stop_input_gradient=True,
        temperature=0.5,
    )
    run_layer_test(
        RemedyDenseWeighting, kwargs, _features(), expected_output_shape=(K, N), tmp_path=tmp_path
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"negative_slope": -0.1}, "negative_slope.*-0.1"),
        ({"temperature": 0.0}, "temperature.*0.0"),
    ],
)
def test_bad_arguments_name_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RemedyDenseWeighting(N, H, **kwargs)


def test_old_dense_configs_with_remedies_load_as_the_experimental_class():
    layer = RemedyDenseWeighting(N, H, negative_slope=0.1, output_bias=1.0)
    config = {**layer.get_config()}
    # What DenseWeighting.get_config wrote while the remedies were its options.
    old = {
        "module": "keras_metacleaner.layers.weighting",
        "class_name": "DenseWeighting",
        "registered_name": "keras_metacleaner>DenseWeighting",
        "config": config,
    }
    revived = keras.saving.deserialize_keras_object(old)
    assert type(revived) is RemedyDenseWeighting
    assert (revived.negative_slope, revived.output_bias) == (0.1, 1.0)
    # At the remedies' defaults it is the paper's layer itself.
    plain = {**config, "negative_slope": 0.0, "output_bias": 0.0}
    assert type(keras.saving.deserialize_keras_object({**old, "config": plain})) is DenseWeighting
