"""Tests of the robust losses at their limits: GCE between CE and MAE, SCE's two terms."""

import json

import keras
import numpy as np
import pytest

from keras_metacleaner.losses import GeneralizedCrossEntropy, SymmetricCrossEntropy

LABELS = np.array([0, 2, 1, 1], "int32")
PROBS = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.05, 0.05, 0.9], [0.5, 0.4, 0.1]], "float32")
P_LABEL = PROBS[np.arange(4), LABELS]


def _ce():
    return float(np.mean(-np.log(P_LABEL)))


def test_gce_tends_to_cross_entropy_as_q_goes_to_zero():
    # (1 - p^q)/q = -log p - q·log²p/2 + O(q²): the gap shrinks linearly with q.
    slope = float(np.mean(np.log(P_LABEL) ** 2) / 2)
    for q in (1e-2, 1e-3):
        gap = _ce() - float(GeneralizedCrossEntropy(q)(LABELS, PROBS))
        assert gap == pytest.approx(q * slope, rel=0.05), q


def test_gce_at_q_one_is_the_mean_absolute_error():
    # 1 - p_y, half the L1 distance between the one-hot label and p.
    mae = np.abs(np.eye(3)[LABELS] - PROBS).sum(-1) / 2
    assert float(GeneralizedCrossEntropy(1.0)(LABELS, PROBS)) == pytest.approx(mae.mean(), rel=1e-6)


def test_gce_formula_at_the_papers_q():
    expected = np.mean((1 - P_LABEL**0.7) / 0.7)
    assert float(GeneralizedCrossEntropy()(LABELS, PROBS)) == pytest.approx(expected, rel=1e-6)


def test_gce_gradient_is_p_to_the_q_times_cross_entropys():
    import tensorflow as tf

    logits = tf.Variable(np.log(PROBS))
    gradients = {}
    for name, loss in (("gce", GeneralizedCrossEntropy(0.7)), ("ce", None)):
        with tf.GradientTape() as tape:
            p = tf.nn.softmax(logits)
            value = (
                loss(LABELS, p)
                if loss
                else keras.losses.sparse_categorical_crossentropy(LABELS, p)[None]
            )
            value = tf.reduce_mean(value)
        gradients[name] = tape.gradient(value, logits).numpy()
    np.testing.assert_allclose(
        gradients["gce"], gradients["ce"] * P_LABEL[:, None] ** 0.7, rtol=1e-4
    )


def test_sce_with_beta_zero_is_alpha_cross_entropy():
    loss = SymmetricCrossEntropy(alpha=0.3, beta=0.0)
    assert float(loss(LABELS, PROBS)) == pytest.approx(0.3 * _ce(), rel=1e-6)


def test_sce_reverse_term_is_minus_a_times_one_minus_p():
    loss = SymmetricCrossEntropy(alpha=0.0, beta=1.0, log_clip=-4.0)
    # -Σ_k p_k log q_k with log 1 = 0 and log 0 = A.
    one_hot = np.eye(3)[LABELS]
    reverse = -(PROBS * np.where(one_hot == 1, 0.0, -4.0)).sum(-1)
    assert float(loss(LABELS, PROBS)) == pytest.approx(reverse.mean(), rel=1e-6)
    both = SymmetricCrossEntropy()(LABELS, PROBS)
    assert float(both) == pytest.approx(0.1 * _ce() + reverse.mean(), rel=1e-6)


@pytest.mark.parametrize("loss", [GeneralizedCrossEntropy(0.5), SymmetricCrossEntropy(0.2, 0.5)])
def test_config_round_trip_and_registration(loss):
    config = keras.saving.serialize_keras_object(loss)
    json.dumps(config)
    assert config["registered_name"].startswith("keras_metacleaner>")
    revived = keras.saving.deserialize_keras_object(config)
    assert type(revived) is type(loss) and revived.get_config() == loss.get_config()
    assert float(revived(LABELS, PROBS)) == pytest.approx(float(loss(LABELS, PROBS)))


def test_labels_of_shape_b_by_1_and_confident_zero_probabilities_stay_finite():
    probs = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    labels = np.array([[1], [0]], "int32")
    for loss in (GeneralizedCrossEntropy(), SymmetricCrossEntropy()):
        assert np.isfinite(float(loss(labels, probs)))


def test_a_compiled_classifier_trains_with_them():
    from test_case import random_subsets

    import keras_metacleaner as kmc

    x, _ = random_subsets(8, 1, num_classes=3)
    x = x[:, 0]
    y = np.arange(8, dtype="int32") % 3
    for loss in (GeneralizedCrossEntropy(), SymmetricCrossEntropy()):
        model = kmc.models.plain_classifier(kmc.models.small_cnn((8, 8, 1), feature_dim=8), 3)
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
        history = model.fit(x, y, batch_size=4, epochs=3, verbose=0).history
        assert history["loss"][-1] < history["loss"][0]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: GeneralizedCrossEntropy(0.0), r"q.*\(0, 1\].*0.0"),
        (lambda: GeneralizedCrossEntropy(1.5), r"q.*1.5"),
        (lambda: SymmetricCrossEntropy(alpha=-1.0), r"alpha.*beta.*-1.0"),
        (lambda: SymmetricCrossEntropy(alpha=0.0, beta=0.0), r"not both 0"),
        (lambda: SymmetricCrossEntropy(log_clip=0.0), r"log_clip.*0.0"),
    ],
)
def test_bad_arguments_name_the_value(make, message):
    with pytest.raises(ValueError, match=message):
        make()
