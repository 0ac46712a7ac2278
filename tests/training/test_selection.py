"""ValidationSelection: score per epoch in the logs, best weights kept across a resume."""

import keras
import numpy as np
import tensorflow as tf

from keras_metacleaner.training.selection import ValidationSelection


def _model(value):
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(2, activation="softmax")])
    model.set_weights([np.array([[value, -value]], "float32"), np.zeros(2, "float32")])
    return model


def test_best_epoch_is_kept_and_survives_a_resume(tmp_path):
    # Label 0 for positive x: weight +1 is right, -1 is wrong.
    data = tf.data.Dataset.from_tensor_slices((np.ones((4, 1), "float32"), np.zeros(4, "int32")))
    state = str(tmp_path / "selection")
    first = ValidationSelection(data, "noisy", batch_size=2, state_dir=state, select=True)
    model = _model(1.0)
    first.set_model(model)
    logs = {}
    first.on_epoch_end(0, logs)
    assert logs["noisy_val_accuracy"] == 1.0 and first.best_epoch == 0
    model.set_weights(_model(-1.0).get_weights())
    first.on_epoch_end(1, {})
    assert first.best_epoch == 0  # a worse epoch does not replace it

    # A new process (resume): the best score and weights come back from state_dir.
    resumed = ValidationSelection(data, "noisy", batch_size=2, state_dir=state, select=True)
    assert (resumed.best_epoch, resumed.best_score) == (0, 1.0)
    worse = _model(-1.0)
    resumed.set_model(worse)
    resumed.on_epoch_end(2, {})
    assert resumed.best_epoch == 0
    assert resumed.restore_best(worse)
    np.testing.assert_array_equal(worse.get_weights()[0], [[1.0, -1.0]])
