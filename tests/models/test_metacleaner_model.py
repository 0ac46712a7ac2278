"""Tests of MetaCleanerModel: training on subsets, the cleaner-free test path, α metrics, saving."""

import copy
import json
import math
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_case import (
    ALL_WEIGHTINGS,
    LEARNED_WEIGHTINGS,
    fashion_mnist_train,
    group_subsets,
    random_subsets,
    scalar_tags,
    symmetric_noise,
    tiny_model,
    two_replica_strategy,
)

import keras_metacleaner as kmc
from keras_metacleaner.layers import MetaCleaner

K, N, C = 4, 3, 3
ALPHA_METRICS = ("alpha_mean", "alpha_std", "alpha_floor")


def _images(num=6, seed=7):
    return np.random.default_rng(seed).uniform(0, 255, (num, 8, 8, 1)).astype("float32")


def _variables_by_part(model):
    parts = {"backbone": model.backbone, "cleaner": model.cleaner, "classifier": model.classifier}
    return {part: [v.path for v in layer.trainable_weights] for part, layer in parts.items()}


# -------------------------------------------------------------- training path
@pytest.mark.parametrize(
    "name, mode",
    [(name, "hallucinate") for name in ALL_WEIGHTINGS]
    + [("attention_sig", "loss_reweight"), ("label_confidence", "loss_reweight")],
)
def test_one_step_moves_backbone_cleaner_and_classifier(name, mode):
    model = tiny_model(name, mode=mode, seed=0, learning_rate=0.5)
    model.build((None, N, 8, 8, 1))
    if name.startswith("fc") and name.endswith("relu_sig"):
        # Open the output ReLU so a dead initialisation cannot hide a cut graph.
        model.cleaner.weighting.output_dense.bias.assign(np.ones((N,), "float32"))
    x, y = random_subsets(K, N, num_classes=C)
    if name == "agreement":
        # Its MLP's output layer starts at zero, which leaves the hidden layer
        # without gradient until that layer has grown.
        score = model.cleaner.weighting.score.kernel
        score.assign(np.random.default_rng(0).normal(size=score.shape).astype("float32"))
    before = {v.path: v.numpy().copy() for v in model.trainable_weights}
    model.train_on_batch(x, y)
    moved = {v.path: bool(np.any(v.numpy() != before[v.path])) for v in model.trainable_weights}
    parts = _variables_by_part(model)
    assert parts["backbone"] and parts["classifier"]
    for part, paths in parts.items():
        # Each variable, not just each part: a kernel without gradient would
        # mean a cut path through Eq. 3 (or a missing loss term).
        assert all(moved[p] for p in paths), (part, [p for p in paths if not moved[p]])
    if name in LEARNED_WEIGHTINGS:
        assert parts["cleaner"], "a learned weighting must have trainable weights"
    else:
        assert not parts["cleaner"]


@pytest.mark.parametrize("name", ALL_WEIGHTINGS)
def test_fit_logs_alpha_and_saves_and_loads(name, tmp_path):
    model = tiny_model(name, seed=1)
    x, y = random_subsets(8, N, num_classes=C, seed=1)
    history = model.fit(x, y, batch_size=K, epochs=2, verbose=0, shuffle=False)
    for key in ("loss", "accuracy", *ALPHA_METRICS):
        assert len(history.history[key]) == 2, key
        assert all(math.isfinite(v) for v in history.history[key]), key
    floor = history.history["alpha_floor"][-1]
    assert 0.0 <= floor <= 1.0
    if name == "constant":
        assert history.history["alpha_mean"] == [1.0, 1.0]
        assert history.history["alpha_std"] == [0.0, 0.0]

    images = _images()
    path = os.path.join(tmp_path, f"{name}.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, kmc.MetaCleanerModel)
    # Through JSON: the file stores tuples as lists.
    assert json.dumps(loaded.get_config(), sort_keys=True) == json.dumps(
        model.get_config(), sort_keys=True
    )
    np.testing.assert_allclose(
        loaded.predict(images, verbose=0), model.predict(images, verbose=0), rtol=1e-6, atol=1e-7
    )
    # The cleaner's own weights too: set predictions and α survive the trip.
    p, alpha = model.predict_sets(x, labels=y, return_weights=True)
    p2, alpha2 = loaded.predict_sets(x, labels=y, return_weights=True)
    np.testing.assert_allclose(p2, p, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(alpha2, alpha, rtol=1e-6, atol=1e-7)


def test_labels_per_image_equal_labels_per_subset():
    x, y = random_subsets(K, N, num_classes=C, seed=2)
    results = []
    for labels in (y, np.repeat(y[:, None], N, axis=1)):
        keras.utils.set_random_seed(3)
        model = tiny_model("fc_fc_sig", seed=0)
        model.train_on_batch(x, labels)
        results.append([v.numpy() for v in model.trainable_weights])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_subsets_are_reshuffled_every_step():
    model = tiny_model("label_confidence", seed=0)
    x = np.arange(K * N, dtype="float32").reshape(K, N, 1, 1, 1) * np.ones((1, 1, 8, 8, 1), "f4")
    orders = []
    for _ in range(3):
        shuffled = model._shuffle_within_subsets(tf.constant(x)).numpy()[..., 0, 0, 0]
        # A permutation inside each subset: no image changes subset.
        np.testing.assert_array_equal(np.sort(shuffled, axis=1), x[..., 0, 0, 0])
        orders.append(shuffled)
    assert not np.array_equal(orders[0], orders[1]) or not np.array_equal(orders[1], orders[2])


@pytest.mark.parametrize("name, order_matters", [("fc_fc_sig", True), ("label_confidence", False)])
def test_shuffling_changes_only_order_dependent_weightings(name, order_matters):
    x, y = random_subsets(K, N, num_classes=C, seed=4)
    results = {}
    for shuffle in (False, True):
        keras.utils.set_random_seed(5)
        model = tiny_model(name, seed=0, shuffle_subsets=shuffle)
        model.train_on_batch(x, y)
        results[shuffle] = np.concatenate([v.numpy().ravel() for v in model.trainable_weights])
    difference = np.abs(results[True] - results[False]).max()
    if order_matters:
        assert difference > 1e-6
    else:
        assert difference < 1e-5


def test_loss_reweight_with_constant_alpha_is_per_image_training():
    x, y = random_subsets(K, N, num_classes=C, seed=6)
    model = tiny_model("constant", mode="loss_reweight", seed=0)
    classifier = model.inference_model()
    probabilities = classifier(x.reshape(K * N, 8, 8, 1))
    expected = keras.losses.sparse_categorical_crossentropy(np.repeat(y, N), probabilities)
    logs = model.train_on_batch(x, y, return_dict=True)
    assert logs["loss"] == pytest.approx(float(np.mean(expected)), rel=1e-5)


def test_member_weights_fall_back_to_equal_when_every_alpha_is_zero():
    model = tiny_model("label_confidence", seed=0)
    logits = np.random.default_rng(0).normal(size=(2, N, C)).astype("float32")
    alpha = np.array([[0.0] * N, [0.5, 0.25, 0.25]], "float32")
    _, _, weights = model._member_targets(np.array([0, 1]), alpha, logits, None)
    # N·α/Σα per subset; an all-zero subset gets the plain mean, not 0/0.
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(weights), [1.0, 1.0, 1.0, 1.5, 0.75, 0.75], rtol=1e-6
    )


@pytest.mark.parametrize(
    "reduce, expected", [(None, [2.0, 1.0]), ("max_alpha", [0.1, 1.0]), ("mean_alpha", [0.1, 0.5])]
)
def test_subset_loss_weights_scale_each_subset_by_its_alpha(reduce, expected):
    model = tiny_model("label_confidence", seed=0, subset_loss_weights=reduce)
    alpha = np.array([[0.05, 0.05, 0.05], [1.0, 0.45, 0.05]], "float32")
    weights = model._subset_weights(alpha, np.array([2.0, 1.0], "float32"))
    if reduce is not None:
        weights = weights / np.array([2.0, 1.0])  # the sample weights multiply in
        expected = [a.max() if reduce == "max_alpha" else a.mean() for a in alpha]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(weights), expected, rtol=1e-6)


def test_subset_loss_weights_enter_the_training_loss():
    x, y = random_subsets(K, N, num_classes=C, seed=6)
    model = tiny_model(
        "label_confidence",
        seed=0,
        member_loss_weight=0.0,
        shuffle_subsets=False,
        subset_loss_weights="mean_alpha",
    )
    probabilities, alpha, _ = model._forward_subsets(x, tf.constant(y), training=True)
    per_subset = keras.losses.sparse_categorical_crossentropy(y, probabilities)
    expected = float(np.mean(np.mean(alpha, axis=1) * per_subset))
    assert expected < float(np.mean(per_subset))  # α < 1 somewhere, so the test can tell
    logs = model.train_on_batch(x, y, return_dict=True)
    assert logs["loss"] == pytest.approx(expected, rel=1e-4)


# -------------------------------------------------------------- bootstrapping
def test_bootstrap_adds_the_prediction_term_weighted_by_distrust():
    # The terms as weighed by α (v2); the batch normalisation's scale is tested below.
    model = tiny_model(
        "label_posterior", seed=0, bootstrap_after_epochs=0, loss_weight_normalization=None
    )
    logits = np.random.default_rng(0).normal(size=(2, N, C)).astype("float32")
    alpha = np.array([[1.0, 0.5, 0.0], [0.2, 0.9, 0.4]], "float32")
    labels = np.array([0, 2])
    sample_weight = np.array([1.0, 2.0], "float32")
    probs = keras.ops.convert_to_numpy(keras.ops.softmax(logits)).reshape(-1, C)
    given = np.repeat(labels, N)
    weights = (alpha * sample_weight[:, None]).reshape(-1)
    rows = np.arange(2 * N)
    expected_given = np.mean(weights * -np.log(probs[rows, given]))
    expected_own = np.mean(
        (1.0 - alpha).reshape(-1)
        * np.repeat(sample_weight, N)
        * -np.log(probs[rows, probs.argmax(-1)])
    )

    def member_loss():
        return float(model._member_loss(labels, alpha, logits, sample_weight))

    model.bootstrap_weight.assign(0.0)  # the warm-up: the default's member loss
    assert member_loss() == pytest.approx(expected_given, rel=1e-5)
    model.bootstrap_weight.assign(1.0)
    assert member_loss() == pytest.approx(expected_given + expected_own, rel=1e-5)


# ------------------------------------------------------- loss weight normalisation
def _member_loss(model, alpha, seed=0):
    logits = np.random.default_rng(seed).normal(size=(2, N, C)).astype("float32")
    return float(model._member_loss(np.array([0, 2]), np.asarray(alpha, "float32"), logits, None))


def test_batch_normalisation_divides_the_member_weights_by_their_mean():
    model = tiny_model(
        "label_posterior", bootstrap_after_epochs=None, loss_weight_normalization="batch"
    )
    plain = tiny_model(
        "label_posterior", bootstrap_after_epochs=None, loss_weight_normalization=None
    )
    alpha = np.array([[1.0, 0.5, 0.0], [0.2, 0.9, 0.4]], "float32")
    # The same members, weighted by α / mean(α) instead of α.
    assert _member_loss(model, alpha) == pytest.approx(
        _member_loss(plain, alpha / alpha.mean()), rel=1e-5
    )
    # A batch whose members are all trusted alike trains like plain training: the
    # weights' scale (the clean share) no longer scales the step.
    for level in (0.2, 0.7):
        assert _member_loss(model, np.full((2, N), level)) == pytest.approx(
            _member_loss(plain, np.ones((2, N))), rel=1e-5
        )
    assert _member_loss(plain, np.full((2, N), 0.2)) == pytest.approx(
        0.2 * _member_loss(plain, np.ones((2, N))), rel=1e-5
    )
    # At the floor the mean is clipped: a dead batch is not trained 1/α times harder.
    low = np.full((2, N), 0.01, "float32")
    assert _member_loss(model, low) == pytest.approx(
        _member_loss(plain, low / kmc.models.metacleaner_model.MIN_MEAN_WEIGHT), rel=1e-5
    )


def test_batch_normalisation_divides_the_subset_weights_by_their_mean():
    model = tiny_model(
        "label_posterior", bootstrap_after_epochs=None, loss_weight_normalization="batch"
    )
    alpha = np.array([[1.0, 0.5, 0.0], [0.2, 0.4, 0.4]], "float32")
    weights = keras.ops.convert_to_numpy(model._alpha_subset_weights(alpha))
    np.testing.assert_allclose(weights, np.array([1.0, 0.4]) / 0.7, rtol=1e-6)


def test_batch_normalisation_scales_the_bootstrap_term_alike():
    # Scaling the label term alone memorised pair flips (docs/results.md): each
    # member keeps its balance α : 1 - α between its label and the prediction.
    model = tiny_model(
        "label_posterior", bootstrap_after_epochs=0, loss_weight_normalization="batch"
    )
    plain = tiny_model("label_posterior", bootstrap_after_epochs=0, loss_weight_normalization=None)
    alpha = np.array([[1.0, 0.5, 0.0], [0.2, 0.9, 0.4]], "float32")
    for switch in (0.0, 1.0):
        model.bootstrap_weight.assign(switch)
        plain.bootstrap_weight.assign(switch)
        assert _member_loss(model, alpha) == pytest.approx(
            _member_loss(plain, alpha) / alpha.mean(), rel=1e-5
        )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"loss_weight_normalization": "global"}, "`loss_weight_normalization` must be one of"),
        (
            {"weighting": "fc_fc_relu_sig", "loss_weight_normalization": "batch"},
            "needs mode='hallucinate' with member_loss_weight > 0 or subset_loss_weights",
        ),
        (
            {"mode": "loss_reweight", "loss_weight_normalization": "batch"},
            "needs mode='hallucinate'",
        ),
    ],
)
def test_batch_normalisation_needs_an_alpha_weighted_loss(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        kmc.MetaCleanerModel(kmc.models.small_cnn((8, 8, 1)), C, N, **kwargs)


def test_a_config_saved_before_loss_weight_normalisation_loads_without_it():
    config = tiny_model("label_posterior", compile=False).get_config()
    config.pop("loss_weight_normalization")
    assert kmc.MetaCleanerModel.from_config(config).loss_weight_normalization is None


def test_a_config_saved_before_bootstrapping_loads_without_it():
    config = tiny_model("label_posterior", compile=False).get_config()
    assert config.pop("bootstrap_after_epochs") == 5  # the label_posterior default ('auto')
    assert kmc.MetaCleanerModel.from_config(config).bootstrap_after_epochs is None


class _BootstrapWeights(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append(float(self.model.bootstrap_weight.numpy()))


def test_bootstrap_switches_on_after_the_warm_up_epochs_and_on_resume(tmp_path):
    x, y = random_subsets(8, N, num_classes=C, seed=9)
    model = tiny_model("label_posterior", seed=0, bootstrap_after_epochs=2)
    seen = _BootstrapWeights()
    model.fit(x, y, batch_size=K, epochs=4, verbose=0, callbacks=[seen])
    assert seen.seen == [0.0, 0.0, 1.0, 1.0]
    # A resumed fit starts in the state of its epoch, whatever the variable held.
    seen = _BootstrapWeights()
    model.bootstrap_weight.assign(1.0)
    model.fit(x, y, batch_size=K, epochs=3, initial_epoch=1, verbose=0, callbacks=[seen])
    assert seen.seen == [0.0, 1.0]
    # Saved with the model: the switch and its state survive a save and load.
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.bootstrap_after_epochs == 2
    assert float(loaded.bootstrap_weight.numpy()) == 1.0


def test_bootstrap_switch_reaches_every_replica():
    strategy = two_replica_strategy()
    x, y = random_subsets(8, N, num_classes=C, seed=9)
    with strategy.scope():
        model = tiny_model("label_posterior", seed=0, bootstrap_after_epochs=1)
    history = model.fit(x, y, batch_size=K, epochs=2, verbose=0)
    replicas = strategy.experimental_local_results(model.bootstrap_weight.value)
    assert len(replicas) == 2 and [float(v.numpy()) for v in replicas] == [1.0, 1.0]
    assert np.all(np.isfinite(history.history["loss"]))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"bootstrap_after_epochs": -1}, r"bootstrap_after_epochs.*-1"),
        ({"bootstrap_after_epochs": 2.5}, r"bootstrap_after_epochs.*2.5"),
        ({"bootstrap_after_epochs": 0, "member_loss_weight": 0.0}, r"member_loss_weight > 0"),
        (
            {
                "bootstrap_after_epochs": 0,
                "mode": "loss_reweight",
                "member_loss_weight": 0.0,
                "subset_loss_weights": None,
            },
            r"mode='hallucinate'",
        ),
    ],
)
def test_bootstrap_needs_the_member_loss(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_model("label_posterior", compile=False, **kwargs)


def test_loss_reweight_mode_trains():
    x, y = random_subsets(8, N, num_classes=C, seed=8)
    model = tiny_model("attention_sig", mode="loss_reweight", seed=0, learning_rate=0.05)
    before = [v.numpy().copy() for v in model.cleaner.trainable_weights]
    history = model.fit(x, y, batch_size=K, epochs=8, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0]
    assert any(np.any(a != b.numpy()) for a, b in zip(before, model.cleaner.trainable_weights))


# -------------------------------------------------------------------- test path
def test_test_path_is_the_plain_classifier():
    model = tiny_model("agreement", seed=0)
    x, y = random_subsets(8, N, num_classes=C, seed=9)
    model.fit(x, y, batch_size=K, epochs=1, verbose=0)
    images = _images(10)
    labels = np.arange(10, dtype="int32") % C
    classifier = model.inference_model()

    assert isinstance(classifier, keras.Model)
    assert not isinstance(classifier, kmc.MetaCleanerModel)
    assert not any(isinstance(layer, MetaCleaner) for layer in classifier._flatten_layers())
    assert {id(v) for v in classifier.weights} <= {id(v) for v in model.weights}

    expected = model.predict(images, verbose=0)
    np.testing.assert_allclose(classifier.predict(images, verbose=0), expected, rtol=1e-6)
    np.testing.assert_allclose(model(images).numpy(), expected, rtol=1e-6)
    manual = keras.ops.softmax(model.classifier(model.backbone(images)))
    np.testing.assert_allclose(manual.numpy(), expected, rtol=1e-5, atol=1e-7)

    logs = model.evaluate(images, labels, verbose=0, return_dict=True)
    assert not any(key.startswith("alpha_") for key in logs)
    classifier.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    plain = classifier.evaluate(images, labels, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(plain["loss"], rel=1e-5)
    assert logs["accuracy"] == pytest.approx(plain["accuracy"])

    # Shares, not copies: training the model changes the classifier's outputs.
    model.fit(x, y, batch_size=K, epochs=1, verbose=0)
    np.testing.assert_allclose(
        classifier.predict(images, verbose=0), model.predict(images, verbose=0), rtol=1e-6
    )
    assert not np.allclose(classifier.predict(images, verbose=0), expected)


def test_inference_model_saves_without_the_library(tmp_path):
    model = tiny_model("fc_fc_relu_sig", seed=0)
    classifier = model.inference_model(name="plain")
    path = os.path.join(tmp_path, "plain.keras")
    classifier.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.name == "plain"
    images = _images()
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0))


def test_predict_sets_uses_the_cleaner():
    model = tiny_model("label_confidence", seed=0)
    x, y = random_subsets(5, N, num_classes=C, seed=10)
    probabilities, alpha = model.predict_sets(x, labels=y, batch_size=2, return_weights=True)
    assert probabilities.shape == (5, C) and alpha.shape == (5, N)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-5)
    assert np.all((alpha >= model.cleaner.alpha_min) & (alpha <= 1.0))
    # Eq. 3 by hand from the backbone and the classifier.
    features = model.backbone(x.reshape(-1, 8, 8, 1)).numpy().reshape(5, N, -1)
    clean = (alpha[..., None] * features).sum(1) / alpha.sum(1, keepdims=True)
    expected = keras.ops.softmax(model.classifier(clean)).numpy()
    np.testing.assert_allclose(probabilities, expected, rtol=1e-4, atol=1e-6)
    # Without labels: still a valid distribution per set.
    unlabelled = model.predict_sets(x)
    assert unlabelled.shape == (5, C)


# --------------------------------------------------------------- α visibility
def test_alpha_in_history_and_tensorboard(tmp_path):
    model = tiny_model("label_confidence", seed=0)
    x, y = random_subsets(8, N, num_classes=C, seed=11)
    images, labels = _images(8), np.arange(8, dtype="int32") % C
    log_dir = os.path.join(tmp_path, "logs")
    history = model.fit(
        x,
        y,
        batch_size=K,
        epochs=2,
        verbose=0,
        validation_data=(images, labels),
        callbacks=[keras.callbacks.TensorBoard(log_dir)],
    )
    for key in ALPHA_METRICS:
        assert key in history.history
        assert f"val_{key}" not in history.history
    assert "val_loss" in history.history
    tags = scalar_tags(os.path.join(log_dir, "train"))
    for key in ALPHA_METRICS:
        assert len(tags[f"epoch_{key}"]) == 2, sorted(tags)
        np.testing.assert_allclose(tags[f"epoch_{key}"], history.history[key], rtol=1e-6)
    assert not any("alpha" in tag for tag in scalar_tags(os.path.join(log_dir, "validation")))


def test_alpha_in_the_progress_bar(capsys):
    model = tiny_model("constant", seed=0)
    x, y = random_subsets(K, N, num_classes=C)
    model.fit(x, y, batch_size=K, epochs=1, verbose=2)
    out = capsys.readouterr().out
    for key in ALPHA_METRICS:
        assert key in out


def test_default_weighting_stays_alive_on_noisy_fashion_mnist():
    """Issue 3, item 5: 400 Fashion-MNIST images, 40% symmetric noise, 6 epochs.

    The paper's fc_fc_relu_sig sits at its floor for more than half of the
    members in this setting; the default must not.
    """
    images, clean_labels = fashion_mnist_train(400, seed=0)
    noisy = symmetric_noise(clean_labels, 0.4, num_classes=10, seed=0)
    assert kmc.layers.DEFAULT_WEIGHTING == "label_posterior"
    model = kmc.MetaCleanerModel(
        kmc.models.small_cnn((28, 28, 1)), num_classes=10, subset_size=4, seed=0
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.02, momentum=0.9),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    for epoch in range(6):
        x, y = group_subsets(images, noisy, 4, seed=epoch)
        logs = model.fit(x, y, batch_size=8, epochs=1, verbose=0).history
        assert logs["alpha_floor"][-1] < 0.5, (epoch, logs)
        assert logs["alpha_std"][-1] > 0.0, (epoch, logs)
    # Alive and informative: members whose label was flipped get less weight.
    is_flipped = noisy != clean_labels
    index = np.arange(len(images))
    # Group indices instead of images to know which members were flipped.
    member_index, y = group_subsets(index, noisy, 4, seed=99)
    _, alpha = model.predict_sets(images[member_index], labels=y, return_weights=True)
    flipped = is_flipped[member_index]
    assert alpha[flipped].mean() < alpha[~flipped].mean()


# ------------------------------------------------------------------ resuming
class _Interrupt(keras.callbacks.Callback):
    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        self.saved = [v.numpy().copy() for v in self.model.weights]

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise RuntimeError("simulated preemption")


class _Epochs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.started = []

    def on_epoch_begin(self, epoch, logs=None):
        if not self.started:
            self.first_weights = [v.numpy().copy() for v in self.model.weights]
        self.started.append(epoch)


def test_backup_and_restore_resumes_from_the_saved_epoch(tmp_path):
    x, y = random_subsets(8, N, num_classes=C, seed=12)
    backup_dir = os.path.join(tmp_path, "backup")
    model = tiny_model("agreement", seed=0)
    interrupt = _Interrupt(2, 0)
    with pytest.raises(RuntimeError, match="simulated preemption"):
        model.fit(
            x,
            y,
            batch_size=K,
            epochs=4,
            verbose=0,
            callbacks=[keras.callbacks.BackupAndRestore(backup_dir), interrupt],
        )
    # Epochs 0 and 1 finished and were backed up; epoch 2 was cut.

    resumed = tiny_model("agreement", seed=0)
    epochs = _Epochs()
    history = resumed.fit(
        x,
        y,
        batch_size=K,
        epochs=4,
        verbose=0,
        callbacks=[keras.callbacks.BackupAndRestore(backup_dir), epochs],
    )
    assert epochs.started == [2, 3]
    # It resumed from the weights of the end of epoch 1, not from a fresh model.
    for restored, saved in zip(epochs.first_weights, interrupt.saved):
        np.testing.assert_array_equal(restored, saved)
    assert len(history.history["alpha_mean"]) == 2
    assert not os.path.exists(backup_dir) or not os.listdir(backup_dir)


# ------------------------------------------------------------------- bad input
def _fit(model, x, y):
    return model.fit(x, y, batch_size=K, epochs=1, verbose=0)


@pytest.mark.parametrize(
    "make_x, make_y, message",
    [
        (lambda x: x[:, 0], lambda y: y, r"rank 5, got shape \(4, 8, 8, 1\).*\[K, N, H, W, C\]"),
        (lambda x: x[:, :2], lambda y: y, r"subset_size=3 images, got N=2"),
        (
            lambda x: x[..., :4, :],
            lambda y: y,
            r"\(8, 4, 1\) do not match the backbone's \(8, 8, 1\)",
        ),
        (lambda x: x, lambda y: y.astype("float32"), r"integer class ids, got dtype.*float32"),
        (lambda x: x, lambda y: np.stack([y, y], 1), r"\[K\] or \[K, N=3\], got \(4, 2\)"),
    ],
)
def test_bad_shapes_raise_value_error(make_x, make_y, message):
    x, y = random_subsets(K, N, num_classes=C)
    with pytest.raises(ValueError, match=message):
        _fit(tiny_model(seed=0), make_x(x), make_y(y))


@pytest.mark.parametrize(
    "labels, message",
    [
        (np.array([0, 1, 7, 2]), r"class ids in \[0, 3\).*7"),
        (np.array([0, -1, 2, 2]), r"class ids >= 0.*-1"),
        (
            np.array([[0, 0, 0], [1, 2, 1], [2, 2, 2], [0, 0, 0]]),
            r"inside one subset must be equal",
        ),
    ],
)
def test_bad_label_values_raise_invalid_argument(labels, message):
    x, _ = random_subsets(K, N, num_classes=C)
    model = tiny_model(seed=0)
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        _fit(model, x, labels.astype("int32"))
    # Nothing was applied: no NaN crept into the weights.
    assert all(np.all(np.isfinite(v.numpy())) for v in model.weights)


def test_missing_labels():
    x, _ = random_subsets(K, N, num_classes=C)
    with pytest.raises(ValueError, match="needs labels"):
        tiny_model(seed=0).fit(x, batch_size=K, epochs=1, verbose=0)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"subset_size": 0}, ValueError, r"subset_size.*0"),
        ({"weighting": "fc_fc"}, ValueError, r"'fc_fc'.*expected one of"),
        ({"num_classes": 1}, ValueError, r"num_classes.*1"),
        ({"mode": "reweight"}, ValueError, r"mode.*'reweight'"),
        ({"subset_loss_weights": "min"}, ValueError, r"subset_loss_weights.*'min'"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        tiny_model(compile=False, **kwargs)


def test_backbone_without_pooling_is_refused():
    inputs = keras.Input((8, 8, 1))
    backbone = keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs))
    with pytest.raises(ValueError, match=r"feature vector \[B, D\].*\(None, 6, 6, 4\)"):
        kmc.MetaCleanerModel(backbone, num_classes=3, subset_size=2)


def test_predict_sets_bad_input():
    model = tiny_model(seed=0)
    x, y = random_subsets(K, N, num_classes=C)
    with pytest.raises(ValueError, match="rank 5"):
        model.predict_sets(x[:, 0])
    with pytest.raises(ValueError, match=r"3 labels given for 4 sets"):
        model.predict_sets(x, labels=y[:3])
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        model.predict_sets(x, labels=np.array([0, 1, 2, 3]))


# -------------------------------------------------------------- mixed precision
@pytest.mark.parametrize("name", ["label_confidence", "fc_fc_relu_sig"])
def test_mixed_precision_fit(name):
    keras.config.set_dtype_policy("mixed_float16")
    model = tiny_model(name, seed=0)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert model.classifier.compute_dtype == "float16"
    x, y = random_subsets(8, N, num_classes=C, seed=13)
    history = model.fit(x, y, batch_size=K, epochs=2, verbose=0)
    for key in ("loss", *ALPHA_METRICS):
        assert all(math.isfinite(v) for v in history.history[key]), (key, history.history)
    probabilities = model.predict(_images(), verbose=0)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-3)
    # Variables stay float32 under mixed_float16 (only the compute is half).
    assert all(v.dtype == "float32" for v in model.trainable_weights)


# ----------------------------------------------------------------- serialization
def test_get_config_round_trip():
    model = tiny_model(
        "attention_exp",
        mode="loss_reweight",
        shuffle_subsets=False,
        seed=3,
        subset_loss_weights=None,
    )
    config = model.get_config()
    pristine = copy.deepcopy(config)
    clone = kmc.MetaCleanerModel.from_config(config)
    assert config == pristine, "from_config must not consume the caller's config"
    assert clone.get_config() == config
    assert clone.mode == "loss_reweight" and clone.weighting.gate == "exp"
    assert clone.subset_loss_weights is None and clone.member_loss_weight == 0.0


# ------------------------------------------------------------- named methods
def test_presets_are_the_named_methods():
    assert set(kmc.models.PRESETS) == {
        "metacleaner",
        "metacleaner_v1",
        "metacleaner_v2",
        "metacleaner_v3",
        "paper",
        "loss_reweight",
    }
    resolved = {}
    for name in kmc.models.PRESETS:
        backbone = kmc.models.small_cnn((8, 8, 1), feature_dim=8)
        model = kmc.MetaCleanerModel.from_preset(name, backbone, C, N)
        resolved[name] = (
            type(model.weighting).__name__,
            model.mode,
            model.member_loss_weight,
            model.subset_loss_weights,
            model.bootstrap_after_epochs,
            model.loss_weight_normalization,
        )
    assert resolved == {
        "metacleaner": ("LabelPosteriorWeighting", "hallucinate", 1.0, "max_alpha", 5, "batch"),
        "metacleaner_v1": ("LabelPosteriorWeighting", "hallucinate", 1.0, "max_alpha", None, None),
        "metacleaner_v2": ("LabelPosteriorWeighting", "hallucinate", 1.0, "max_alpha", 5, None),
        "metacleaner_v3": ("LabelPosteriorWeighting", "hallucinate", 1.0, "max_alpha", 5, "batch"),
        "paper": ("DenseWeighting", "hallucinate", 0.0, None, None, None),
        "loss_reweight": ("DenseWeighting", "loss_reweight", 0.0, None, None, None),
    }


def test_the_paper_preset_is_fc_fc_relu_sig_with_384_hidden_units():
    model = kmc.MetaCleanerModel.from_preset("paper", kmc.models.small_cnn((8, 8, 1)), C, N)
    layer = model.weighting
    assert (layer.hidden_relu, layer.output_relu, layer.hidden_units) == (False, True, 384)
    assert model.shuffle_subsets


def test_preset_overrides_replace_single_options():
    backbone = kmc.models.small_cnn((8, 8, 1))
    model = kmc.MetaCleanerModel.from_preset("paper", backbone, C, N, hidden_units=16, seed=3)
    assert (model.cleaner.hidden_units, model.seed, model.member_loss_weight) == (16, 3, 0.0)
    with pytest.raises(ValueError, match=r"'papers'.*loss_reweight.*metacleaner.*paper"):
        kmc.MetaCleanerModel.from_preset("papers", backbone, C, N)


@pytest.mark.parametrize(
    "weighting, expected",
    [
        ("fc_fc_relu_sig", (0.0, None)),
        ("attention_sig", (0.0, None)),
        ("constant", (0.0, None)),
        ("label_confidence", (1.0, "max_alpha")),
        ("label_posterior", (1.0, "max_alpha")),
    ],
)
def test_a_bare_weighting_gets_its_documented_losses_never_a_hybrid(weighting, expected):
    model = tiny_model(weighting, compile=False)
    assert (model.member_loss_weight, model.subset_loss_weights) == expected
    # get_config stores what is in effect, not "auto".
    config = model.get_config()
    assert (config["member_loss_weight"], config["subset_loss_weights"]) == expected


def test_the_bare_default_is_the_metacleaner_preset():
    bare = tiny_model(compile=False, name="m").get_config()
    backbone = kmc.models.small_cnn((8, 8, 1), feature_dim=16)
    preset = kmc.MetaCleanerModel.from_preset(
        "metacleaner", backbone, C, N, hidden_units=8, name="m"
    ).get_config()
    for key in (
        "mode",
        "member_loss_weight",
        "subset_loss_weights",
        "bootstrap_after_epochs",
        "loss_weight_normalization",
    ):
        assert bare[key] == preset[key], key
    unnamed = [{**c["weighting"]["config"], "name": None} for c in (bare, preset)]
    assert bare["weighting"]["class_name"] == preset["weighting"]["class_name"]
    assert unnamed[0] == unnamed[1]


def test_explicit_losses_win_over_auto():
    model = tiny_model("fc_fc_relu_sig", compile=False, member_loss_weight=0.5)
    assert (model.member_loss_weight, model.subset_loss_weights) == (0.5, None)


def test_loss_reweight_refuses_hallucination_losses():
    with pytest.raises(ValueError, match=r"mode='hallucinate' only.*1.0.*'auto'"):
        tiny_model("fc_fc_relu_sig", mode="loss_reweight", member_loss_weight=1.0, compile=False)
    model = tiny_model("label_posterior", mode="loss_reweight", compile=False)
    assert (model.member_loss_weight, model.subset_loss_weights) == (0.0, None)


@pytest.mark.parametrize("integer", [np.int64, np.int32, np.uint8, int])
def test_numpy_integers_are_accepted(integer):
    model = tiny_model(num_classes=integer(3), subset_size=integer(3), compile=False)
    assert type(model.num_classes) is int and type(model.subset_size) is int
    json.dumps(model.get_config())


@pytest.mark.parametrize("value", [3.0, True, "3", np.float32(3)])
def test_non_integer_class_counts_are_refused(value):
    with pytest.raises(ValueError, match=rf"num_classes.*{value!r}"[:20]):
        tiny_model(num_classes=value, compile=False)


# ------------------------------------------------------- run-time batch checks
def test_wrong_subset_size_after_a_first_fit_names_n():
    x, y = random_subsets(K, N, num_classes=C)
    for weighting in ("label_posterior", "fc_fc_relu_sig"):
        model = tiny_model(weighting, seed=0)
        _fit(model, x, y)
        # The retraced step relaxes N to None: the check must hold at run time.
        with pytest.raises(
            (ValueError, tf.errors.InvalidArgumentError), match=r"subset_size=3 images, got N\W+2"
        ):
            _fit(model, x[:, :2], y)


def test_labels_that_differ_inside_a_subset_raise_under_xla():
    x, _ = random_subsets(K, N, num_classes=C)
    model = tiny_model(seed=0, compile=False)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", jit_compile=True)
    assert model.jit_compile
    mixed = np.array([[0, 0, 0], [1, 2, 1], [2, 2, 2], [0, 0, 0]], "int32")
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"1 subset\(s\) whose labels differ"):
        _fit(model, x, mixed)
    before = [v.numpy().copy() for v in model.trainable_weights]
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"outside \[0, 3\)"):
        _fit(model, x, np.array([0, 1, 7, 2], "int32"))
    # The invalid step gave zero gradients (plain SGD: the weights stand still).
    for old, variable in zip(before, model.trainable_weights):
        np.testing.assert_array_equal(variable.numpy(), old)
    # Valid batches train again, under the same compiled step.
    history = _fit(model, x, mixed[:, 0].copy())
    assert np.isfinite(history.history["loss"][0])
    assert not any(name.startswith("invalid_") for name in history.history)


# ---------------------------------------------------------------- alpha_floor
def _alpha_floor_after_a_step(weighting, output_bias=None):
    x, y = random_subsets(K, N, num_classes=C, seed=30)
    model = tiny_model(weighting, seed=0, learning_rate=0.0)
    if output_bias is not None:
        model.cleaner.weighting.output_dense.bias.assign(np.full((N,), output_bias, "float32"))
    return model.train_on_batch(x, y, return_dict=True)["alpha_floor"]


def test_alpha_floor_is_one_for_a_dead_weighting():
    # Every output ReLU closed: α ≡ 0.5, the lowest value fc_fc_relu_sig allows.
    assert _alpha_floor_after_a_step("fc_fc_relu_sig", output_bias=-100.0) == 1.0


@pytest.mark.parametrize("weighting, bias", [("fc_fc_relu_sig", 5.0), ("label_posterior", None)])
def test_alpha_floor_is_near_zero_for_a_live_weighting(weighting, bias):
    assert _alpha_floor_after_a_step(weighting, output_bias=bias) < 0.05
