"""Tests of ELRModel: the early-learning targets, the regulariser and its limits."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_case import two_replica_strategy

import keras_metacleaner as kmc
from keras_metacleaner.models import ELRModel

B, C, M = 8, 3, 16


def _classifier(name="clf"):
    backbone = kmc.models.small_cnn((8, 8, 1), feature_dim=8, name=f"{name}_cnn")
    return kmc.models.plain_classifier(backbone, C, name=name)


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (M, 8, 8, 1)).astype("float32")
    return x, (np.arange(M) % C).astype("int32")


def _compiled(model, lr=0.1):
    model.compile(
        optimizer=keras.optimizers.SGD(lr),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def test_lambda_zero_is_cross_entropy():
    x, y = _data()
    elr = _compiled(ELRModel(_classifier(), M, C, lambda_=0.0))
    plain = _compiled(_classifier("plain"))
    plain.set_weights(elr.classifier.get_weights())
    index = np.arange(B)
    elr_logs = elr.train_on_batch({"images": x[:B], "index": index}, y[:B], return_dict=True)
    plain_logs = plain.train_on_batch(x[:B], y[:B], return_dict=True)
    assert elr_logs["loss"] == pytest.approx(plain_logs["loss"], rel=1e-6)
    for a, b in zip(elr.classifier.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_targets_are_a_running_mean_and_the_loss_adds_the_regulariser():
    x, y = _data()
    model = _compiled(ELRModel(_classifier(), M, C, lambda_=3.0, beta=0.7), lr=0.0)
    index = np.arange(4, 4 + B)
    p = np.clip(model.classifier(x[index]).numpy(), 1e-4, 1 - 1e-4)
    normalised = p / p.sum(-1, keepdims=True)
    logs = model.train_on_batch({"images": x[index], "index": index}, y[index], return_dict=True)
    targets = keras.ops.convert_to_numpy(model.targets)
    np.testing.assert_allclose(targets[index], 0.3 * normalised, rtol=1e-5)
    assert not targets[:4].any() and not targets[4 + B :].any()
    ce = -np.log(p[np.arange(B), y[index]])
    regulariser = np.log(1 - np.sum(0.3 * normalised * p, -1))
    assert logs["loss"] == pytest.approx(np.mean(ce) + 3.0 * np.mean(regulariser), rel=1e-4)
    # A second step (lr 0: same p) moves each target by β.
    model.train_on_batch({"images": x[index], "index": index}, y[index])
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model.targets)[index], (0.7 * 0.3 + 0.3) * normalised, rtol=1e-5
    )


def test_fit_on_a_dataset_with_indices_then_save_load_and_export(tmp_path):
    x, y = _data()
    dataset = tf.data.Dataset.from_tensor_slices(({"images": x, "index": np.arange(M)}, y))
    model = _compiled(ELRModel(_classifier(), M, C))
    history = model.fit(dataset.batch(B), epochs=2, verbose=0).history
    assert np.all(np.isfinite(history["loss"]))
    path = os.path.join(tmp_path, "elr.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is ELRModel
    assert json.dumps(loaded.get_config(), sort_keys=True) == json.dumps(
        model.get_config(), sort_keys=True
    )
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded.targets), keras.ops.convert_to_numpy(model.targets)
    )
    classifier = model.inference_model()
    np.testing.assert_allclose(classifier.predict(x, verbose=0), model.predict(x, verbose=0))
    # Evaluation takes plain images.
    assert "accuracy" in model.evaluate(x, y, verbose=0, return_dict=True)


def test_two_replicas_match_one_device():
    strategy = two_replica_strategy()
    x, y = _data(1)
    single = _compiled(ELRModel(_classifier("s"), M, C), lr=0.5)
    with strategy.scope():
        mirrored = _compiled(ELRModel(_classifier("m"), M, C), lr=0.5)
    mirrored.set_weights(single.get_weights())
    index = np.arange(B)[::-1].copy()
    # fit splits the batch between the replicas: each updates its own rows.
    kwargs = {"batch_size": B, "epochs": 1, "verbose": 0, "shuffle": False}
    single_logs = single.fit({"images": x[:B], "index": index}, y[:B], **kwargs).history
    mirrored_logs = mirrored.fit({"images": x[:B], "index": index}, y[:B], **kwargs).history
    for a, b in zip(mirrored.get_weights(), single.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    # Both replicas' rows reached every copy of the targets.
    for copy in mirrored.targets.value.values:
        assert np.all(copy.numpy()[:B].sum(-1) > 0) and not copy.numpy()[B:].any()
    assert mirrored_logs["loss"][0] == pytest.approx(single_logs["loss"][0], rel=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_examples": 0}, r"num_examples.*0"),
        ({"num_classes": 4}, r"probabilities \[B, 4\]"),
        ({"lambda_": -1.0}, r"lambda_.*-1.0"),
        ({"beta": 1.0}, r"beta.*1.0"),
    ],
)
def test_bad_arguments(kwargs, message):
    arguments = {"num_examples": M, "num_classes": C, **kwargs}
    with pytest.raises(ValueError, match=message):
        ELRModel(_classifier(), **arguments)


def test_batches_without_indices_are_refused():
    x, y = _data()
    model = _compiled(ELRModel(_classifier(), M, C))
    with pytest.raises(ValueError, match=r'\{"images": x, "index": i\}'):
        model.train_on_batch(x[:B], y[:B])


def test_an_index_out_of_range_names_the_range():
    x, y = _data()
    model = _compiled(ELRModel(_classifier(), M, C))
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"\[0, {M}\)"):
        model.train_on_batch({"images": x[:2], "index": np.array([0, M])}, y[:2])
