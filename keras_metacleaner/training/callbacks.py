"""Callbacks of a training run: α histogram, epoch summary, learning rate, resumable history."""

from __future__ import annotations

import json
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from keras_metacleaner.training.results import write_json_atomic


def current_learning_rate(optimizer) -> float:
    """The optimizer's learning rate now (a schedule evaluated at its step).

    Args:
        optimizer: a Keras optimizer (possibly a `LossScaleOptimizer`).

    Returns:
        float.

    Example:

    >>> current_learning_rate(keras.optimizers.SGD(0.5))
    0.5
    """
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


class LearningRateLogger(keras.callbacks.Callback):
    """Adds `learning_rate` to the epoch logs, so the CSV log and History have it.

    Put it first in the callback list: callbacks after it see the value.

    Example:

    >>> cb = LearningRateLogger()
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and getattr(self.model, "optimizer", None) is not None:
            logs["learning_rate"] = current_learning_rate(self.model.optimizer)


class EpochHistory(keras.callbacks.Callback):
    """Keeps the per-epoch logs and seconds per epoch in a JSON file, across resumes.

    `BackupAndRestore` restores weights and the epoch counter but a resumed
    `fit` returns a History of the resumed epochs only; this file holds them
    all. When the first epoch of a `fit` begins, entries of that epoch and
    later ones (left by a run killed after logging them) are dropped.

    Args:
        path: the JSON file (written atomically after every epoch), or None to
            keep the history in memory only.
        stage: a tag stored with each entry, e.g. `"train"` or `"finetune"`.

    Example:

    >>> h = EpochHistory(None, stage="train")
    >>> h.epochs
    []
    """

    def __init__(self, path: str | None, stage: str = "train"):
        super().__init__()
        self.path = path
        self.stage = stage
        self.epochs: list[dict] = []
        if path and os.path.exists(path):
            with open(path) as f:
                self.epochs = json.load(f)
        self._start = None

    def on_train_begin(self, logs=None):
        self._resumed = False

    def on_epoch_begin(self, epoch, logs=None):
        if not getattr(self, "_resumed", False):
            # The first epoch this fit runs: anything logged from it on is redone.
            self.epochs = [e for e in self.epochs if e["epoch"] < epoch]
            self._resumed = True
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        entry = {"epoch": int(epoch), "stage": self.stage}
        entry["seconds"] = time.perf_counter() - (self._start or time.perf_counter())
        for key, value in (logs or {}).items():
            entry[key] = float(np.asarray(value))
        self.epochs = [e for e in self.epochs if e["epoch"] != epoch] + [entry]
        if self.path:
            write_json_atomic(self.path, self.epochs)


class EpochSummary(keras.callbacks.Callback):
    """One `absl.logging` line per epoch: metrics, learning rate and α statistics.

    Args:
        epochs: total epochs of the stage (for "epoch 3/10").
        stage: a tag printed at the start of the line.

    Example:

    >>> EpochSummary(10, stage="train").epochs
    10
    """

    _ORDER = (
        "loss",
        "accuracy",
        "val_loss",
        "val_accuracy",
        "alpha_mean",
        "alpha_std",
        "alpha_floor",
    )

    def __init__(self, epochs: int, stage: str = "train"):
        super().__init__()
        self.epochs = epochs
        self.stage = stage
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        keys = [k for k in self._ORDER if k in logs] + sorted(
            k for k in logs if k not in self._ORDER and k != "learning_rate"
        )
        parts = [f"{k}={float(logs[k]):.4f}" for k in keys]
        if "learning_rate" in logs:
            parts.append(f"lr={float(logs['learning_rate']):.3g}")
        seconds = time.perf_counter() - (self._start or time.perf_counter())
        logging.info(
            "[%s] epoch %d/%d %s (%.1fs)",
            self.stage,
            epoch + 1,
            self.epochs,
            " ".join(parts),
            seconds,
        )


class AlphaHistogram(keras.callbacks.Callback):
    """Writes α of a fixed probe batch to TensorBoard after every epoch.

    `tf.summary.histogram("alpha", ...)` shows whether the Noisy Weighting is
    alive (spread) or dead (all α at the floor or at 1), plus scalars
    `alpha/mean`, `alpha/std` and `alpha/floor_share` of the probe.

    Args:
        log_dir: TensorBoard directory of the summaries.
        probe_x: `[K, N, H, W, C]` subsets (fixed for the whole run).
        probe_y: `[K]` their (noisy) labels.

    Example:

    >>> import tempfile
    >>> cb = AlphaHistogram(tempfile.mkdtemp(), np.zeros((1, 2, 4, 4, 1)), np.zeros(1, "int32"))
    """

    def __init__(self, log_dir: str, probe_x: np.ndarray, probe_y: np.ndarray):
        super().__init__()
        self.log_dir = log_dir
        self.probe_x = np.asarray(probe_x, "float32")
        self.probe_y = np.asarray(probe_y, "int32")
        self._writer = None
        self.last_alpha: np.ndarray | None = None

    def _alpha(self) -> np.ndarray:
        _, alpha = self.model.predict_sets(self.probe_x, labels=self.probe_y, return_weights=True)
        return np.asarray(alpha, "float32")

    def on_epoch_end(self, epoch, logs=None):
        alpha = self._alpha()
        self.last_alpha = alpha
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        floor = float(self.model.cleaner.alpha_min)
        with self._writer.as_default(step=epoch):
            tf.summary.histogram("alpha", alpha)
            tf.summary.scalar("alpha/mean", float(alpha.mean()))
            tf.summary.scalar("alpha/std", float(alpha.std()))
            tf.summary.scalar("alpha/floor_share", float(np.mean(alpha <= floor + 1e-3)))
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
