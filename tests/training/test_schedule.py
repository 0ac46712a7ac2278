import keras
import numpy as np
import pytest

from keras_metacleaner.training import schedule


def test_step_decay_divides_every_period():
    s = schedule.StepDecay(0.01, decay_steps=20, decay_factor=0.1)
    rates = [float(s(step)) for step in (0, 19, 20, 39, 40, 79, 80)]
    np.testing.assert_allclose(rates, [1e-2, 1e-2, 1e-3, 1e-3, 1e-4, 1e-5, 1e-6], rtol=1e-5)


def test_step_decay_serializes():
    s = schedule.StepDecay(0.05, decay_steps=7, decay_factor=0.5)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(s))
    assert isinstance(restored, schedule.StepDecay)
    assert float(restored(15)) == pytest.approx(float(s(15)))


@pytest.mark.parametrize(
    "kwargs", [{"decay_steps": 0, "decay_factor": 0.1}, {"decay_steps": 5, "decay_factor": 0.0}]
)
def test_step_decay_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        schedule.StepDecay(0.1, **kwargs)


def test_sgdl2_matches_l2_loss_through_momentum():
    """Coupled decay == plain SGD on loss + l2/2·|w|², momentum included (PyTorch semantics)."""
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(5,)).astype("float32")
    target = rng.normal(size=(5,)).astype("float32")
    l2, lr, momentum = 0.3, 0.1, 0.9

    w_ours = keras.Variable(w0.copy())
    ours = schedule.SGDL2(learning_rate=lr, momentum=momentum, l2=l2)
    w_ref = keras.Variable(w0.copy())
    ref = keras.optimizers.SGD(learning_rate=lr, momentum=momentum)
    for _ in range(5):
        # d/dw 0.5|w - t|² = w - t; the L2 term adds l2·w.
        ours.apply([w_ours.value - target], [w_ours])
        ref.apply([w_ref.value - target + l2 * w_ref.value], [w_ref])
    np.testing.assert_allclose(w_ours.numpy(), w_ref.numpy(), rtol=1e-5, atol=1e-6)

    # Keras' decoupled weight_decay gives a different trajectory at the same value.
    w_dec = keras.Variable(w0.copy())
    dec = keras.optimizers.SGD(learning_rate=lr, momentum=momentum, weight_decay=l2)
    for _ in range(5):
        dec.apply([w_dec.value - target], [w_dec])
    assert not np.allclose(w_dec.numpy(), w_ref.numpy(), atol=1e-3)


def test_sgdl2_serializes_and_rejects_weight_decay():
    opt = schedule.SGDL2(learning_rate=schedule.StepDecay(0.01, 10, 0.1), momentum=0.9, l2=1e-3)
    restored = schedule.SGDL2.from_config(opt.get_config())
    assert restored.l2 == pytest.approx(1e-3)
    assert restored.get_config()["momentum"] == pytest.approx(0.9)
    with pytest.raises(ValueError, match="l2"):
        schedule.SGDL2(weight_decay=0.1)


def test_make_optimizer_schedule_in_epochs():
    opt = schedule.make_optimizer(0.01, steps_per_epoch=10, lr_decay_epochs=5, lr_decay_factor=0.1)
    assert isinstance(opt, schedule.SGDL2)
    assert isinstance(opt._learning_rate, keras.optimizers.schedules.PiecewiseConstantDecay)
    assert float(opt._learning_rate(49)) == pytest.approx(0.01)
    assert float(opt._learning_rate(50)) == pytest.approx(0.001)
    constant = schedule.make_optimizer(0.02, steps_per_epoch=10)
    assert float(constant.learning_rate) == pytest.approx(0.02)


def test_learning_rate_after():
    assert schedule.learning_rate_after(0.01, 20, 5, 0.1) == pytest.approx(1e-5)
    assert schedule.learning_rate_after(0.01, 5, 5, 0.1) == pytest.approx(1e-2)
    assert schedule.learning_rate_after(0.01, 6, 5, 0.1) == pytest.approx(1e-3)
    assert schedule.learning_rate_after(0.01, 6, 0, 0.1) == pytest.approx(1e-2)


def test_piecewise_constant_reproduces_step_decay():
    """New runs use Keras' PiecewiseConstantDecay; old model.keras files keep StepDecay."""
    old = schedule.StepDecay(0.1, decay_steps=70, decay_factor=0.1)
    new = schedule.make_schedule(0.1, 7, epochs=60, schedule="step", lr_decay_epochs=10)
    assert isinstance(new, keras.optimizers.schedules.PiecewiseConstantDecay)
    steps = range(420)
    # Same rate at every step, to float32 rounding (StepDecay's power is computed in float32).
    np.testing.assert_allclose(
        [float(new(s)) for s in steps], [float(old(s)) for s in steps], rtol=2e-7
    )


def test_cosine_and_warmup_use_keras_schedules():
    cosine = schedule.make_schedule(0.1, 10, epochs=5, schedule="cosine", warmup_epochs=1)
    assert isinstance(cosine, keras.optimizers.schedules.CosineDecay)
    assert float(cosine(0)) == 0.0 and float(cosine(10)) == pytest.approx(0.1)
    assert float(cosine(49)) < 0.001
    warm = schedule.make_schedule(0.1, 10, epochs=5, schedule="constant", warmup_epochs=2)
    assert [round(float(warm(s)), 4) for s in (0, 10, 20, 49)] == [0.0, 0.05, 0.1, 0.1]
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(warm))
    assert float(restored(10)) == pytest.approx(0.05)
    step = schedule.make_schedule(0.1, 10, 30, "step", lr_decay_epochs=10, warmup_epochs=1)
    assert [round(float(step(s)), 4) for s in (5, 10, 99, 100, 200)] == [
        0.05,
        0.1,
        0.1,
        0.01,
        0.001,
    ]
    assert schedule.make_schedule(0.1, 10, 5) == 0.1
