"""Tests of the Noisy Weighting functions: Table 2 of the paper, agreement, label_confidence."""

import keras
import numpy as np
import pytest
from keras import ops
from test_case import ALL_WEIGHTINGS, LEARNED_WEIGHTINGS, run_layer_test

from keras_metacleaner.layers import weighting as weighting_lib
from keras_metacleaner.layers.weighting import (
    DEFAULT_WEIGHTING,
    PAPER_WEIGHTING,
    WEIGHTINGS,
    LabelConfidenceWeighting,
    LabelPosteriorWeighting,
    get_weighting,
)

K, N, D, H = 5, 4, 6, 8

#: Weightings that score each member from the member (and the set as a whole):
#: permuting a subset must permute α the same way.
ORDER_EQUIVARIANT = [
    "constant",
    "attention_sig",
    "attention_exp",
    "agreement",
    "label_confidence",
    "label_posterior",
]


def _features(seed=0, scale=1.0):
    return np.random.default_rng(seed).normal(size=(K, N, D)).astype("float32") * scale


def _class_scores(seed=1):
    # log p(y | v_i) of a real softmax: ≤ 0.
    logits = np.random.default_rng(seed).normal(size=(K, N, 3)) * 2
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return log_p[..., 0].astype("float32")


def test_the_issue_names_every_table_2_variant():
    table_2 = {
        "constant",
        "attention_sig",
        "attention_exp",
        "fc_fc_sig",
        "fc_fc_relu_sig",
        "fc_relu_fc_relu_sig",
    }
    assert table_2 <= set(WEIGHTINGS)
    assert PAPER_WEIGHTING == "fc_fc_relu_sig"
    assert DEFAULT_WEIGHTING == "label_posterior"


@pytest.mark.parametrize("name", ALL_WEIGHTINGS)
def test_layer_contract_and_serialization(name, tmp_path):
    reference = get_weighting(name, subset_size=N, hidden_units=H)
    run_layer_test(
        type(reference),
        reference.get_config(),
        (_features(), _class_scores()),
        expected_output_shape=(K, N),
        tmp_path=tmp_path,
    )


@pytest.mark.parametrize("name", ALL_WEIGHTINGS)
def test_alpha_lies_in_the_promised_range(name):
    layer = get_weighting(name, subset_size=N, hidden_units=H)
    # Large features push every pre-activation to its extremes, where a
    # wrong range (say a missing sigmoid) would show.
    for scale in (0.01, 1.0, 100.0):
        alpha = ops.convert_to_numpy(layer(_features(scale=scale), _class_scores()))
        assert np.all(np.isfinite(alpha))
        assert np.all(alpha >= layer.alpha_min - 1e-6), (name, alpha.min(), layer.alpha_min)
        assert np.all(alpha <= layer.alpha_max + 1e-6), (name, alpha.max(), layer.alpha_max)


@pytest.mark.parametrize(
    "name, low, high, open_interval",
    [
        ("constant", 1.0, 1.0, False),
        ("fc_fc_relu_sig", 0.5, 1.0, False),
        ("fc_relu_fc_relu_sig", 0.5, 1.0, False),
        ("fc_fc_sig", 0.0, 1.0, True),
        ("attention_sig", 0.0, 1.0, True),
        ("agreement", 0.0, 1.0, True),
        ("label_confidence", 0.05, 1.0, False),
        ("label_posterior", 0.05, 1.0, False),
    ],
)
def test_documented_ranges(name, low, high, open_interval):
    layer = get_weighting(name, subset_size=N, hidden_units=H)
    assert (layer.alpha_min, layer.alpha_max) == (low, high)
    alpha = ops.convert_to_numpy(layer(_features(), _class_scores()))
    if open_interval:
        assert np.all((alpha > low) & (alpha < high))
    else:
        assert np.all((alpha >= low) & (alpha <= high))
    if name == "constant":
        np.testing.assert_array_equal(alpha, np.ones((K, N)))


def test_attention_exp_is_positive_and_may_exceed_one():
    layer = get_weighting("attention_exp", subset_size=N, hidden_units=H)
    alpha = ops.convert_to_numpy(layer(_features(scale=10.0)))
    assert np.all(alpha > 0)
    # The score vector `a` is unconstrained: exp(a·tanh(.)) ranges over
    # (e^-|a|, e^|a|), so a range capped at 1 would be a false promise.
    assert layer.alpha_max >= alpha.max()


def test_fc_fc_relu_sig_floor_is_reached_when_the_relu_is_closed():
    layer = get_weighting("fc_fc_relu_sig", subset_size=N, hidden_units=H)
    layer.build((None, N, D))
    layer.output_dense.bias.assign(np.full((N,), -100.0, "float32"))
    alpha = ops.convert_to_numpy(layer(_features()))
    # ReLU(negative) = 0 and sigmoid(0) = 0.5: the dead state the paper's
    # default falls into, exactly at alpha_min.
    np.testing.assert_array_equal(alpha, np.full((K, N), 0.5, "float32"))


@pytest.mark.parametrize("name", ORDER_EQUIVARIANT)
def test_order_equivariant(name):
    layer = get_weighting(name, subset_size=N, hidden_units=H)
    features, scores = _features(), _class_scores()
    alpha = ops.convert_to_numpy(layer(features, scores))
    rng = np.random.default_rng(3)
    for _ in range(3):
        perm = rng.permutation(N)
        permuted = ops.convert_to_numpy(layer(features[:, perm], scores[:, perm]))
        np.testing.assert_allclose(permuted, alpha[:, perm], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["fc_fc_sig", "fc_fc_relu_sig", "fc_relu_fc_relu_sig"])
def test_fc_on_the_concatenation_depends_on_order(name):
    # The paper's FC weightings see positions, which is why section 3.3
    # shuffles every subset each step.
    layer = get_weighting(name, subset_size=N, hidden_units=H)
    layer.build((None, N, D))
    # Positive output bias keeps the ReLU variants open (off the 0.5 floor).
    layer.output_dense.bias.assign(np.full((N,), 2.0, "float32"))
    features = _features()
    perm = np.array([1, 2, 3, 0])
    alpha = ops.convert_to_numpy(layer(features))
    permuted = ops.convert_to_numpy(layer(features[:, perm]))
    assert np.abs(permuted - alpha[:, perm]).max() > 1e-4


def test_label_confidence_formula_and_stopped_gradient():
    floor, gamma = 0.1, 2.0
    layer = LabelConfidenceWeighting(subset_size=N, floor=floor, gamma=gamma)
    scores = _class_scores()
    alpha = ops.convert_to_numpy(layer(_features(), scores))
    np.testing.assert_allclose(alpha, floor + (1 - floor) * np.exp(scores) ** gamma, rtol=1e-5)

    import tensorflow as tf

    tensor = tf.constant(scores)
    with tf.GradientTape() as tape:
        tape.watch(tensor)
        total = tf.reduce_sum(layer(tf.constant(_features()), tensor))
    gradient = tape.gradient(total, tensor)
    # The classification loss must not be able to move α (the collapse the
    # learned weightings suffer), so no gradient reaches the scores.
    assert gradient is None or np.all(gradient.numpy() == 0)


def test_label_confidence_relative_scores_divide_by_the_top_class():
    log_probs = np.log(
        np.array([[[0.5, 0.3, 0.2], [0.2, 0.7, 0.1]], [[0.1, 0.1, 0.8], [0.4, 0.4, 0.2]]])
    ).astype("float32")
    labels = np.array([0, 2], "int32")
    plain = LabelConfidenceWeighting(subset_size=2, floor=0.0, relative=False)
    relative = LabelConfidenceWeighting(subset_size=2, floor=0.0, relative=True)
    np.testing.assert_allclose(
        ops.convert_to_numpy(plain.class_scores(log_probs, labels)),
        np.log([[0.5, 0.2], [0.8, 0.2]]),
        rtol=1e-6,
    )
    scores = relative.class_scores(log_probs, labels)
    np.testing.assert_allclose(
        ops.convert_to_numpy(scores), np.log([[1.0, 0.2 / 0.7], [1.0, 0.2 / 0.4]]), rtol=1e-6
    )
    # The label's class is the top one: full weight however unsure (0.5).
    alpha = ops.convert_to_numpy(relative(np.zeros((2, 2, 3), "float32"), scores))
    np.testing.assert_allclose(alpha, [[1.0, 0.2 / 0.7], [1.0, 0.5]], rtol=1e-5)


def test_label_confidence_relative_survives_serialization():
    assert LabelConfidenceWeighting(subset_size=N).relative  # the default
    layer = LabelConfidenceWeighting(subset_size=N, relative=False, gamma=2.0)
    restored = LabelConfidenceWeighting.from_config(layer.get_config())
    assert not restored.relative and restored.gamma == 2.0


def _posterior(q, prior, num_classes):
    odds = prior / (1 - prior) * (num_classes - 1) * q / (1 - q)
    return odds / (1 + odds)


def test_label_posterior_is_the_clean_label_posterior_with_the_batch_prior():
    log_probs = np.log(
        np.array(
            [
                [[0.5, 0.3, 0.2], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1]],
                [[0.1, 0.1, 0.8], [0.4, 0.4, 0.2], [0.3, 0.6, 0.1]],
            ]
        )
    ).astype("float32")
    labels = np.array([0, 2], "int32")
    layer = LabelPosteriorWeighting(subset_size=3, floor=0.1, flip_classes=None)
    alpha = ops.convert_to_numpy(
        layer(np.zeros((2, 3, 4), "float32"), layer.class_scores(log_probs, labels))
    )
    # 3 of the 6 members are in their label's class: π = 0.5.
    q = np.array([[1.0, 0.2 / 0.7, 1.0], [1.0, 0.2 / 0.4, 0.1 / 0.6]])
    expected = 0.1 + 0.9 * np.where(q == 1.0, 1.0, _posterior(np.minimum(q, 0.999999), 0.5, 3))
    np.testing.assert_allclose(alpha, expected, rtol=1e-4)

    # A higher clean share trusts the same doubtful members more.
    trusting = LabelPosteriorWeighting(subset_size=3, floor=0.1, clean_prior=0.9, flip_classes=None)
    more = ops.convert_to_numpy(
        trusting(np.zeros((2, 3, 4), "float32"), trusting.class_scores(log_probs, labels))
    )
    assert np.all(more >= alpha - 1e-6) and more[0, 1] > alpha[0, 1] + 0.1


def test_label_posterior_on_a_confident_batch_keeps_hard_members():
    # 99 of 100 members in their label's class (π clipped to 0.99): a hard
    # member at q = 0.05 keeps most of its weight; label_confidence gives 0.05.
    probs = np.full((1, 100, 10), 0.01, "float32")
    probs[0, :, 0] = 0.91
    probs[0, 0] = [0.04] + [0.8] + [0.02] * 8
    labels = np.array([0], "int32")
    posterior = LabelPosteriorWeighting(subset_size=100, floor=0.0)  # one flip class
    alpha = ops.convert_to_numpy(
        posterior(np.zeros((1, 100, 2), "float32"), posterior.class_scores(np.log(probs), labels))
    )
    np.testing.assert_allclose(alpha[0, 0], _posterior(0.05, 0.99, 2), rtol=1e-4)
    assert alpha[0, 0] > 0.8 and np.all(alpha[0, 1:] > 0.999)


def test_label_posterior_at_its_lowest_clean_share_is_label_confidence():
    # No member in its label's class: π is clipped to min_clean_prior = 0.5,
    # where one flip class makes the posterior q itself.
    log_probs = np.log(np.array([[[0.2, 0.7, 0.1], [0.3, 0.6, 0.1]]], "float32"))
    labels = np.array([0], "int32")
    features = np.zeros((1, 2, 4), "float32")
    posterior = LabelPosteriorWeighting(subset_size=2)
    confidence = LabelConfidenceWeighting(subset_size=2)
    np.testing.assert_allclose(
        ops.convert_to_numpy(posterior(features, posterior.class_scores(log_probs, labels))),
        ops.convert_to_numpy(confidence(features, confidence.class_scores(log_probs, labels))),
        rtol=1e-5,
    )
    # A lower bound turns the same members down harder.
    harsher = LabelPosteriorWeighting(subset_size=2, min_clean_prior=0.1)
    alpha = ops.convert_to_numpy(harsher(features, harsher.class_scores(log_probs, labels)))
    np.testing.assert_allclose(
        alpha[0], 0.05 + 0.95 * _posterior(np.array([2 / 7, 0.5]), 0.1, 2), rtol=1e-4
    )


def test_label_posterior_options_survive_serialization():
    layer = LabelPosteriorWeighting(
        subset_size=N,
        floor=0.2,
        relative=False,
        clean_prior=0.7,
        flip_classes=None,
        min_clean_prior=0.3,
    )
    restored = LabelPosteriorWeighting.from_config(layer.get_config())
    assert (restored.floor, restored.relative, restored.clean_prior) == (0.2, False, 0.7)
    assert (restored.flip_classes, restored.min_clean_prior) == (None, 0.3)


def test_label_posterior_flip_classes_sets_the_odds_of_a_wrong_label():
    log_probs = np.log(np.array([[[0.6, 0.3, 0.1]]], "float32"))
    labels = np.array([1], "int32")
    for flip_classes, spread in ((None, 2), (1, 1)):
        layer = LabelPosteriorWeighting(
            subset_size=1, floor=0.0, clean_prior=0.5, flip_classes=flip_classes
        )
        alpha = layer(np.zeros((1, 1, 2), "float32"), layer.class_scores(log_probs, labels))
        expected = _posterior(0.5, 0.5, spread + 1)  # q = 0.3 / 0.6
        assert float(alpha[0, 0]) == pytest.approx(expected, rel=1e-5)


def test_label_confidence_without_scores_is_the_plain_mean():
    layer = LabelConfidenceWeighting(subset_size=N)
    np.testing.assert_array_equal(ops.convert_to_numpy(layer(_features())), np.ones((K, N)))


@pytest.mark.parametrize("name", LEARNED_WEIGHTINGS)
def test_learned_weightings_have_trainable_weights_and_gradients(name):
    import tensorflow as tf

    layer = get_weighting(name, subset_size=N, hidden_units=H)
    layer.build((None, N, D))
    if name.startswith("fc") and name.endswith("relu_sig"):
        layer.output_dense.bias.assign(np.full((N,), 1.0, "float32"))
    assert layer.trainable_weights
    target = np.random.default_rng(0).uniform(size=(K, N)).astype("float32")
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum((layer(tf.constant(_features())) - target) ** 2)
    gradients = tape.gradient(loss, layer.trainable_weights)
    assert any(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in gradients)


def test_get_weighting_returns_instances_unchanged():
    layer = LabelConfidenceWeighting(subset_size=N, floor=0.2)
    assert get_weighting(layer, subset_size=N) is layer


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"'fc_fc_relu'.*constant.*label_confidence"):
        get_weighting("fc_fc_relu", subset_size=N)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: weighting_lib.AttentionWeighting(N, H, gate="tanh"), "gate.*'tanh'"),
        (lambda: LabelConfidenceWeighting(N, floor=1.0), "floor.*1.0"),
        (lambda: LabelConfidenceWeighting(N, floor=-0.1), "floor.*-0.1"),
        (lambda: LabelConfidenceWeighting(N, gamma=0.0), "gamma.*0.0"),
        (lambda: LabelPosteriorWeighting(N, clean_prior=1.0), "clean_prior.*1.0"),
        (lambda: LabelPosteriorWeighting(N, floor=1.0), "floor.*1.0"),
        (lambda: LabelPosteriorWeighting(N, flip_classes=0), "flip_classes.*0"),
        (lambda: LabelPosteriorWeighting(N, min_clean_prior=1.0), "min_clean_prior.*1.0"),
    ],
)
def test_bad_arguments_name_the_value(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_weightings_are_registered_by_name():
    for name in ALL_WEIGHTINGS:
        layer = get_weighting(name, subset_size=N, hidden_units=H)
        serialized = keras.saving.serialize_keras_object(layer)
        assert serialized["registered_name"].startswith("keras_metacleaner>")


# One subset of N = 2 members with D = 2 features, concatenated: x = [1, 2, -1, 0.5].
_PIN_FEATURES = np.array([[[1.0, 2.0], [-1.0, 0.5]]], "float32")
_PIN_W1 = np.array([[1, 0, -1], [0.5, -1, 0], [0, 1, 1], [1, 0, 2]], "float32")
_PIN_B1 = np.array([0, 0.5, 0], "float32")
_PIN_W2 = np.array([[1, -1], [0.5, 1], [-1, 0.5]], "float32")
_PIN_B2 = np.array([0.25, 0], "float32")


@pytest.mark.parametrize(
    "name, expected",
    [
        # h = x·W1 + b1 = [2.5, -2.5, -1]; z = h·W2 + b2 = [2.5, -5.5];
        # the paper's layer: α = sigmoid(ReLU(z)) = [sigmoid(2.5), sigmoid(0)].
        ("fc_fc_relu_sig", [0.9241418, 0.5]),
        # No ReLU at all: α = sigmoid(z).
        ("fc_fc_sig", [0.9241418, 0.0040701]),
        # ReLU on the hidden layer too: h = [2.5, 0, 0], z = [2.75, -2.5].
        ("fc_relu_fc_relu_sig", [0.9399133, 0.5]),
    ],
)
def test_table_2_fc_layers_match_hand_computed_values(name, expected):
    layer = get_weighting(name, subset_size=2, hidden_units=3)
    layer.build((None, 2, 2))
    layer.hidden.set_weights([_PIN_W1, _PIN_B1])
    layer.output_dense.set_weights([_PIN_W2, _PIN_B2])
    alpha = ops.convert_to_numpy(layer(_PIN_FEATURES))
    np.testing.assert_allclose(alpha, [expected], rtol=1e-6, atol=1e-7)
