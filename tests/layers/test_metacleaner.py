"""Tests of the MetaCleaner layer: Eq. 3 (Clean Hallucinating) over every weighting."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops
from test_case import ALL_WEIGHTINGS, LEARNED_WEIGHTINGS, run_layer_test

from keras_metacleaner.layers import MetaCleaner, Weighting
from keras_metacleaner.layers.weighting import PACKAGE

K, N, D, H = 6, 4, 5, 8


def _features(seed=0):
    return np.random.default_rng(seed).normal(size=(K, N, D)).astype("float32")


def _class_scores(seed=1):
    return -np.random.default_rng(seed).uniform(0, 4, size=(K, N)).astype("float32")


@keras.saving.register_keras_serializable(package="keras_metacleaner_tests")
class FixedWeighting(Weighting):
    """α given by the test: checks Eq. 3 independently of any weighting."""

    def __init__(self, subset_size, alpha=None, **kwargs):
        super().__init__(subset_size, **kwargs)
        self.alpha = alpha

    def call(self, features, class_scores=None):
        return ops.convert_to_tensor(np.asarray(self.alpha, "float32"))

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


@pytest.mark.parametrize("return_weights", [False, True])
@pytest.mark.parametrize("name", ALL_WEIGHTINGS)
def test_layer_contract_and_serialization(name, return_weights, tmp_path):
    shapes = ((K, D), (K, N)) if return_weights else (K, D)
    run_layer_test(
        MetaCleaner,
        {
            "subset_size": N,
            "weighting": name,
            "hidden_units": H,
            "return_weights": return_weights,
        },
        (_features(), _class_scores()),
        expected_output_shape=shapes,
        tmp_path=tmp_path if return_weights else None,
    )


def test_constant_is_exactly_the_plain_mean():
    features = _features()
    clean = MetaCleaner(N, weighting="constant")(features)
    np.testing.assert_array_equal(
        ops.convert_to_numpy(clean), ops.convert_to_numpy(ops.mean(features, axis=1))
    )
    np.testing.assert_allclose(ops.convert_to_numpy(clean), features.mean(1), rtol=1e-6)


def test_eq_3_weighted_mean_for_given_alpha():
    alpha = np.random.default_rng(5).uniform(0.05, 1.0, size=(K, N)).astype("float32")
    features = _features()
    cleaner = MetaCleaner(N, weighting=FixedWeighting(N, alpha=alpha.tolist()), return_weights=True)
    clean, returned = cleaner(features)
    expected = (alpha[..., None] * features).sum(1) / alpha.sum(1)[:, None]
    np.testing.assert_allclose(ops.convert_to_numpy(clean), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(returned), alpha)


def test_one_dominant_member_wins():
    alpha = np.full((K, N), 1e-6, "float32")
    alpha[:, 2] = 1.0
    features = _features()
    clean = MetaCleaner(N, weighting=FixedWeighting(N, alpha=alpha.tolist()))(features)
    np.testing.assert_allclose(ops.convert_to_numpy(clean), features[:, 2], atol=1e-4)


@pytest.mark.parametrize(
    "name", ["constant", "attention_sig", "attention_exp", "agreement", "label_confidence"]
)
def test_hallucinated_feature_ignores_the_order_inside_a_subset(name):
    cleaner = MetaCleaner(N, weighting=name, hidden_units=H)
    features, scores = _features(), _class_scores()
    clean = ops.convert_to_numpy(cleaner(features, scores))
    perm = np.random.default_rng(2).permutation(N)
    np.testing.assert_allclose(
        ops.convert_to_numpy(cleaner(features[:, perm], scores[:, perm])),
        clean,
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize("name", LEARNED_WEIGHTINGS)
def test_gradients_reach_the_features_and_the_weighting(name):
    cleaner = MetaCleaner(N, weighting=name, hidden_units=H)
    cleaner.build((None, N, D))
    if name.startswith("fc") and name.endswith("relu_sig"):
        # Open the ReLU so the test does not depend on a lucky initialisation.
        cleaner.weighting.output_dense.bias.assign(np.ones((N,), "float32"))
    features = tf.constant(_features())
    direction = tf.constant(np.random.default_rng(3).normal(size=(K, D)).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(features)
        loss = tf.reduce_sum(cleaner(features) * direction)
    grad_features, *grad_weights = tape.gradient(loss, [features, *cleaner.trainable_weights])
    assert float(tf.reduce_max(tf.abs(grad_features))) > 0
    assert any(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in grad_weights)


def test_alpha_min_is_the_weightings_floor():
    assert MetaCleaner(N, weighting="fc_fc_relu_sig").alpha_min == 0.5
    assert MetaCleaner(N, weighting="constant").alpha_min == 1.0
    assert MetaCleaner(N, weighting="label_confidence").alpha_min == pytest.approx(0.05)


def test_registered_under_the_package():
    name = keras.saving.serialize_keras_object(MetaCleaner(N))["registered_name"]
    assert name == f"{PACKAGE}>MetaCleaner"


def test_subset_size_one_is_the_identity():
    features = _features()[:, :1]
    clean = MetaCleaner(1, weighting="attention_sig", hidden_units=H)(features)
    np.testing.assert_allclose(ops.convert_to_numpy(clean), features[:, 0], rtol=1e-6)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("subset_size", [0, -2, 2.5, True, "4"])
def test_bad_subset_size(subset_size):
    with pytest.raises(ValueError, match=rf"subset_size.*{subset_size!r}"):
        MetaCleaner(subset_size)


def test_unknown_weighting_names_it():
    with pytest.raises(ValueError, match="'softmax'.*expected one of"):
        MetaCleaner(N, weighting="softmax")


def test_bad_hidden_units():
    with pytest.raises(ValueError, match="hidden_units.*0"):
        MetaCleaner(N, hidden_units=0)


@pytest.mark.parametrize("shape", [(K, D), (K, N, D, 1), (N,)])
def test_wrong_rank_names_the_shape(shape):
    with pytest.raises(ValueError, match=r"\[K, N, D\].*rank 3.*" + re_shape(shape)):
        MetaCleaner(N)(np.zeros(shape, "float32"))


def test_wrong_subset_size_names_both():
    with pytest.raises(ValueError, match=rf"subset_size={N}.*N={N + 1}"):
        MetaCleaner(N)(np.zeros((K, N + 1, D), "float32"))


def re_shape(shape):
    import re

    return re.escape(str(tuple(shape)))


@pytest.mark.parametrize("policy", ["float32", "mixed_float16"])
def test_all_zero_alpha_falls_back_to_the_mean_not_nan(policy):
    keras.config.set_dtype_policy(policy)
    from keras_metacleaner.layers import LabelConfidenceWeighting

    # floor=0 is allowed; confidences of e^-200 underflow to α = 0 exactly.
    cleaner = MetaCleaner(N, weighting=LabelConfidenceWeighting(N, floor=0.0))
    features = _features()
    scores = np.full((K, N), -200.0, "float32")
    scores[0] = -1.0  # one live subset keeps its weighted mean
    clean = ops.convert_to_numpy(ops.cast(cleaner(features, scores), "float32"))
    assert np.all(np.isfinite(clean))
    tolerance = 1e-6 if policy == "float32" else 1e-2
    np.testing.assert_allclose(clean[1:], features[1:].mean(1), atol=tolerance, rtol=tolerance)
    np.testing.assert_allclose(clean[0], features[0].mean(0), atol=tolerance, rtol=tolerance)
