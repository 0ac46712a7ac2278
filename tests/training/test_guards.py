"""StopOnNonFinite: a NaN loss stops fit before BackupAndRestore saves the poisoned epoch."""

from __future__ import annotations

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_metacleaner.training.guards import NonFiniteLossError, StopOnNonFinite

BATCH, STEPS = 4, 3


def _model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    return model


def _data(poison_batch: int | None, value=np.nan):
    """Repeated batches; batch `poison_batch` (counted over the whole run) holds a bad pixel."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH * STEPS * 3, 3)).astype("float32")
    y = rng.integers(0, 2, len(x)).astype("int32")
    if poison_batch is not None:
        x[poison_batch * BATCH, 0] = value
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH).repeat()


def _fit(model, data, callbacks, epochs=3):
    return model.fit(
        data, epochs=epochs, steps_per_epoch=STEPS, callbacks=callbacks, verbose=0, shuffle=False
    )


def _backup_weights(backup: str) -> tuple[list[np.ndarray], int]:
    model = _model()
    model.load_weights(os.path.join(backup, "latest.weights.h5"))
    with open(os.path.join(backup, "training_metadata.json")) as handle:
        epoch = json.load(handle)["epoch"]
    return [w.numpy() for w in model.weights], epoch


def test_nan_loss_stops_before_the_epoch_is_backed_up_and_a_rerun_resumes_clean(tmp_path):
    backup = str(tmp_path / "backup")
    model = _model()
    # Batch 1 of the second epoch (run-wide batch STEPS + 1) has a NaN pixel.
    with pytest.raises(NonFiniteLossError) as error:
        _fit(model, _data(STEPS + 1), [StopOnNonFinite(), keras.callbacks.BackupAndRestore(backup)])
    assert (error.value.epoch, error.value.batch, error.value.name) == (1, 1, "loss")
    assert np.isnan(error.value.value)
    assert "the loss became nan at epoch 2, batch 2" in str(error.value)
    weights, epoch = _backup_weights(backup)
    assert epoch == 1, "the backup must hold the last finite epoch"
    assert all(np.isfinite(w).all() for w in weights)

    # A rerun on clean data resumes from that finite epoch and never sees a NaN.
    rerun = _model()
    history = _fit(
        rerun, _data(None), [StopOnNonFinite(), keras.callbacks.BackupAndRestore(backup)]
    )
    assert history.epoch == [1, 2]
    assert all(np.isfinite(v) for v in history.history["loss"])
    assert all(np.isfinite(w.numpy()).all() for w in rerun.weights)


def test_terminate_on_nan_alone_keeps_the_nan_weights_in_the_backup(tmp_path):
    """Why StopOnNonFinite exists: with Keras' TerminateOnNaN the epoch still ends and is saved.

    If this starts failing, Keras changed and StopOnNonFinite may be simplified.
    """
    backup = str(tmp_path / "backup")
    callbacks = [
        keras.callbacks.TerminateOnNaN(),
        # As the training recipe keeps it: the state outlives the end of fit.
        keras.callbacks.BackupAndRestore(backup, delete_checkpoint=False),
    ]
    _fit(_model(), _data(STEPS + 1), callbacks)
    weights, epoch = _backup_weights(backup)
    assert epoch == 2 and not all(np.isfinite(w).all() for w in weights)


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_infinite_inputs_stop_too(value):
    with pytest.raises(NonFiniteLossError, match=r"became (nan|inf) at epoch 1, batch 2"):
        _fit(_model(), _data(1, value), [StopOnNonFinite()])


def test_an_infinite_loss_value_is_named():
    def infinite(y_true, y_pred):
        return keras.ops.mean(y_pred, axis=-1) * np.inf

    model = _model()
    model.compile("sgd", infinite)
    with pytest.raises(NonFiniteLossError, match=r"the loss became inf at epoch 1, batch 1"):
        _fit(model, _data(None), [StopOnNonFinite()])


def test_non_finite_weights_are_caught_at_the_end_of_the_epoch(tmp_path):
    class Poison(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            kernel = self.model.layers[0].kernel
            kernel.assign(np.full(kernel.shape, np.nan, "float32"))

    backup = str(tmp_path / "backup")
    with pytest.raises(NonFiniteLossError, match=r"weight .*kernel became nan at epoch 1") as e:
        _fit(
            _model(),
            _data(None),
            [Poison(), StopOnNonFinite(stage="finetune"), keras.callbacks.BackupAndRestore(backup)],
        )
    assert str(e.value).startswith("finetune: ")
    assert not os.path.exists(os.path.join(backup, "latest.weights.h5"))
    # Off: the same poisoning passes through (the loss of that epoch was finite).
    _fit(_model(), _data(None), [Poison(), StopOnNonFinite(check_weights=False)], epochs=1)


def test_finite_training_is_untouched():
    history = _fit(_model(), _data(None), [StopOnNonFinite()])
    assert history.epoch == [0, 1, 2]
