"""Tests of CoTeachingModel: the small-loss exchange, the schedule and the estimated forget rate."""

import json
import os

import keras
import numpy as np
import pytest
from test_case import two_replica_strategy

import keras_metacleaner as kmc
from keras_metacleaner.models import CoTeachingModel, ForgetRateSchedule, estimate_forget_rate
from keras_metacleaner.models.coteaching import forget_rate_schedule, histogram_edges

B, C = 8, 3


def _classifier(name):
    backbone = kmc.models.small_cnn((8, 8, 1), feature_dim=8, name=f"{name}_cnn")
    return kmc.models.plain_classifier(backbone, C, name=name)


def _data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (n, 8, 8, 1)).astype("float32"), (np.arange(n) % C).astype("int32")


def _compiled(model, lr=0.1):
    model.compile(
        optimizer=keras.optimizers.SGD(lr),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _reference_step(classifier, x, y):
    """One SGD step of `classifier` alone, on cross-entropy over (x, y)."""
    _compiled(classifier).train_on_batch(x, y)
    return classifier.get_weights()


def test_forget_rate_zero_trains_both_nets_on_the_whole_batch():
    x, y = _data()
    model = _compiled(CoTeachingModel(_classifier("a"), _classifier("b"), forget_rate=0.0))
    expected = {}
    for name, net in (("a", model.classifier_a), ("b", model.classifier_b)):
        clone = _classifier(f"ref_{name}")
        clone.set_weights(net.get_weights())
        expected[name] = _reference_step(clone, x[:B], y[:B])
    model.fit(x[:B], y[:B], batch_size=B, epochs=1, verbose=0)
    for name, net in (("a", model.classifier_a), ("b", model.classifier_b)):
        for actual, reference in zip(net.get_weights(), expected[name]):
            np.testing.assert_allclose(actual, reference, rtol=1e-5, atol=1e-6)


def test_each_net_learns_from_the_others_small_loss_share():
    x, y = _data()
    x, y = x[:B], y[:B]
    model = _compiled(CoTeachingModel(_classifier("a"), _classifier("b"), forget_rate=0.5))
    model.current_forget_rate.assign(0.5)  # train_on_batch runs no schedule
    loss_a = keras.losses.sparse_categorical_crossentropy(y, model.classifier_a(x)).numpy()
    loss_b = keras.losses.sparse_categorical_crossentropy(y, model.classifier_b(x)).numpy()
    small_a, small_b = np.argsort(loss_a)[: B // 2], np.argsort(loss_b)[: B // 2]
    expected_b = _classifier("ref_b")
    expected_b.set_weights(model.classifier_b.get_weights())
    expected_a = _classifier("ref_a")
    expected_a.set_weights(model.classifier_a.get_weights())
    expected_b = _reference_step(expected_b, x[small_a], y[small_a])
    expected_a = _reference_step(expected_a, x[small_b], y[small_b])
    model.train_on_batch(x, y)
    for actual, reference in zip(model.classifier_b.get_weights(), expected_b):
        np.testing.assert_allclose(actual, reference, rtol=1e-5, atol=1e-6)
    for actual, reference in zip(model.classifier_a.get_weights(), expected_a):
        np.testing.assert_allclose(actual, reference, rtol=1e-5, atol=1e-6)


def test_schedule_is_the_papers_ramp():
    # np.linspace(0, τ**c, T_k) over the first T_k epochs, τ after.
    ramp = np.linspace(0, 0.5**2, 4)
    for epoch in range(6):
        expected = ramp[epoch] if epoch < 4 else 0.5
        assert forget_rate_schedule(epoch, 0.5, 4, 2) == pytest.approx(expected)


@pytest.mark.parametrize("rate", [0.0, 0.2, 0.45])
def test_the_estimate_recovers_a_known_noise_rate_from_synthetic_losses(rate):
    rng = np.random.default_rng(0)
    n = 20000
    noisy = rng.random(n) < rate
    # Clean examples: small losses; mislabelled ones: large, as after warm-up.
    losses = np.where(noisy, rng.gamma(9.0, 0.35, n), rng.gamma(1.5, 0.12, n))
    assert estimate_forget_rate(losses) == pytest.approx(rate, abs=0.04)
    counts, _ = np.histogram(np.clip(losses, 0, 9.99), bins=histogram_edges())
    assert estimate_forget_rate(counts=counts, edges=histogram_edges()) == pytest.approx(
        rate, abs=0.04
    )


def test_fit_estimates_the_rate_during_the_ramp_then_freezes_it(tmp_path):
    x, y = _data(24)
    model = _compiled(CoTeachingModel(_classifier("a"), _classifier("b"), num_gradual=2))
    seen = []

    class Spy(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            # Runs before fit's schedule: the estimate after the previous epoch.
            seen.append(float(self.model.estimated_forget_rate))

    history = model.fit(x, y, batch_size=B, epochs=4, verbose=0, callbacks=[Spy()]).history
    # The schedule was added by fit and logs the rate each epoch used: the
    # ramp at epoch 1 of 2 is the estimate itself, after the ramp τ.
    assert history["forget_rate"][0] == 0.0
    assert history["forget_rate"][1] == pytest.approx(seen[1], abs=1e-6)
    assert seen[2] == seen[3] == float(model.estimated_forget_rate)  # frozen after the ramp
    assert history["forget_rate"][2] == pytest.approx(seen[2], abs=1e-6)
    seen.append(float(model.estimated_forget_rate))
    assert float(keras.ops.sum(model.loss_histogram)) == len(x)  # the last epoch's losses

    path = os.path.join(tmp_path, "coteaching.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is CoTeachingModel
    assert json.dumps(loaded.get_config(), sort_keys=True) == json.dumps(
        model.get_config(), sort_keys=True
    )
    assert float(loaded.estimated_forget_rate) == seen[-1]
    np.testing.assert_allclose(
        loaded.inference_model().predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6
    )


def test_a_given_schedule_callback_is_not_doubled():
    x, y = _data()
    model = _compiled(CoTeachingModel(_classifier("a"), _classifier("b"), forget_rate=0.2))
    schedule = ForgetRateSchedule()
    model.fit(x, y, batch_size=B, epochs=1, verbose=0, callbacks=[schedule])
    assert schedule.model is model


def test_two_replicas_match_one_device_at_forget_rate_zero():
    strategy = two_replica_strategy()
    x, y = _data(seed=2)
    single = _compiled(CoTeachingModel(_classifier("sa"), _classifier("sb"), forget_rate=0.0), 0.5)
    with strategy.scope():
        mirrored = _compiled(
            CoTeachingModel(_classifier("ma"), _classifier("mb"), forget_rate=0.0), 0.5
        )
    mirrored.set_weights(single.get_weights())
    # fit splits each batch between the replicas (train_on_batch would give
    # each replica the whole batch).
    kwargs = {"batch_size": B, "epochs": 1, "verbose": 0, "shuffle": False}
    single_logs = single.fit(x[:B], y[:B], **kwargs).history
    mirrored_logs = mirrored.fit(x[:B], y[:B], **kwargs).history
    for a, b in zip(mirrored.get_weights(), single.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert mirrored_logs["loss"][0] == pytest.approx(single_logs["loss"][0], rel=1e-5)
    # Each replica counted its own examples' losses; together, the batch.
    assert float(keras.ops.convert_to_numpy(mirrored.loss_histogram).sum()) == B


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"forget_rate": 1.0}, r"forget_rate.*1.0"),
        ({"num_gradual": 0}, r"num_gradual.*0"),
        ({"exponent": 0.0}, r"exponent.*0.0"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CoTeachingModel(_classifier("a"), _classifier("b"), **kwargs)


def test_the_same_classifier_twice_is_refused():
    a = _classifier("a")
    with pytest.raises(ValueError, match="two different models"):
        CoTeachingModel(a, a)
