import glob
import os

import keras
import numpy as np
import tensorflow as tf
from absl import logging

import keras_metacleaner as kmc
from keras_metacleaner.training import callbacks, results


def _histograms(log_dir):
    found = {}
    for path in glob.glob(os.path.join(log_dir, "events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                found.setdefault(value.tag, []).append(event.step)
    return found


def _tiny_metacleaner():
    model = kmc.MetaCleanerModel(
        kmc.models.small_cnn((8, 8, 1), feature_dim=8), num_classes=3, subset_size=2, seed=0
    )
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy")
    return model


def test_alpha_histogram_writes_each_epoch(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (6, 2, 8, 8, 1)).astype("float32")
    y = np.array([0, 1, 2, 0, 1, 2], "int32")
    model = _tiny_metacleaner()
    cb = callbacks.AlphaHistogram(str(tmp_path), x[:3], y[:3])
    model.fit(x, y, batch_size=3, epochs=2, verbose=0, callbacks=[cb])
    tags = _histograms(str(tmp_path))
    assert tags["alpha"] == [0, 1]
    assert set(tags) >= {"alpha", "alpha/mean", "alpha/std", "alpha/floor_share"}
    assert cb.last_alpha.shape == (3, 2)
    lo = model.cleaner.alpha_min
    assert np.all(cb.last_alpha >= lo - 1e-6)


def test_epoch_history_survives_a_resume(tmp_path):
    path = str(tmp_path / "history.json")
    first = callbacks.EpochHistory(path, stage="train")
    first.set_model(keras.Sequential())
    for epoch in range(3):
        first.on_epoch_begin(epoch)
        first.on_epoch_end(epoch, {"loss": np.float32(1.0 / (epoch + 1))})
    assert [e["epoch"] for e in results.read_json(path)] == [0, 1, 2]

    # A resumed run that restored the state of 2 finished epochs redoes epoch 2.
    second = callbacks.EpochHistory(path, stage="train")
    second.set_model(keras.Sequential())
    second.on_train_begin()
    assert [e["epoch"] for e in second.epochs] == [0, 1, 2]
    second.on_epoch_begin(2)
    assert [e["epoch"] for e in second.epochs] == [0, 1]
    second.on_epoch_end(2, {"loss": 0.25})
    saved = results.read_json(path)
    assert [e["epoch"] for e in saved] == [0, 1, 2]
    assert saved[2]["loss"] == 0.25 and saved[2]["stage"] == "train" and saved[2]["seconds"] >= 0

    # A resume after the last epoch runs no epoch and keeps everything.
    third = callbacks.EpochHistory(path, stage="train")
    third.set_model(keras.Sequential())
    third.on_train_begin()
    third.on_train_end()
    assert [e["epoch"] for e in third.epochs] == [0, 1, 2]


def test_epoch_summary_logs_one_line(monkeypatch):
    lines = []
    monkeypatch.setattr(logging, "info", lambda fmt, *args: lines.append(fmt % args))
    cb = callbacks.EpochSummary(5, stage="finetune")
    cb.on_epoch_begin(1)
    cb.on_epoch_end(
        1, {"val_accuracy": 0.5, "loss": 1.25, "learning_rate": 0.001, "alpha_mean": 0.75}
    )
    assert len(lines) == 1
    line = lines[0]
    assert line.startswith("[finetune] epoch 2/5 loss=1.2500")
    assert line.index("loss=") < line.index("val_accuracy=0.5000") < line.index("alpha_mean=0.7500")
    assert "lr=0.001" in line


def test_learning_rate_logger_reads_the_schedule():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    opt = kmc.training.make_optimizer(
        0.1, steps_per_epoch=1, lr_decay_epochs=1, lr_decay_factor=0.5
    )
    model.compile(optimizer=opt, loss="mse")
    seen = []

    class Spy(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(logs["learning_rate"])

    x = np.zeros((4, 2), "float32")
    model.fit(
        x,
        x[:, :1],
        batch_size=4,
        epochs=3,
        verbose=0,
        callbacks=[callbacks.LearningRateLogger(), Spy()],
    )
    np.testing.assert_allclose(seen, [0.05, 0.025, 0.0125], rtol=1e-6)
