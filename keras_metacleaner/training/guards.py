"""Guards of a training run: stop at the first non-finite loss, before a backup can keep it.

Keras' `TerminateOnNaN` only sets `model.stop_training`: the epoch still ends,
so `BackupAndRestore.on_epoch_end` saves the NaN weights, and every rerun of
the same command reloads them. `StopOnNonFinite` raises instead, at the batch
where the loss turns NaN or infinite, so no later callback of that epoch runs
and `backup/` keeps the last finite epoch.
"""

from __future__ import annotations

import math

import keras
import numpy as np


class NonFiniteLossError(FloatingPointError):
    """The training loss (or a weight) became NaN or infinite.

    Attributes:
        epoch: 0-based epoch where it happened.
        batch: 0-based batch of that epoch, or None when found at the epoch's end.
        value: the non-finite value.
        name: what was non-finite ("loss" or a weight's path).
    """

    def __init__(self, message: str, *, epoch: int, batch: int | None, value: float, name: str):
        super().__init__(message)
        self.epoch = epoch
        self.batch = batch
        self.value = value
        self.name = name


class StopOnNonFinite(keras.callbacks.Callback):
    """Raises `NonFiniteLossError` as soon as the loss is NaN or infinite.

    Put it BEFORE `keras.callbacks.BackupAndRestore` in the callback list:
    Keras calls callbacks in list order, so the error leaves `fit` before the
    backup of a poisoned epoch (or batch, with an integer `save_freq`) is
    written. The backup then holds the last finite epoch; a rerun resumes
    from it, and the same settings diverge again, so change them (the
    learning rate, the data) and start afresh.

    Args:
        check_weights: also check every trainable weight at the end of each
            epoch (one pass over the weights, before the backup is saved).
        stage: a name for the messages (e.g. "train", "finetune").

    Example:

    >>> import numpy as np, keras
    >>> model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    >>> model.compile("sgd", "mse")
    >>> try:
    ...     model.fit(np.array([[np.nan]]), np.zeros(1), callbacks=[StopOnNonFinite()], verbose=0)
    ... except NonFiniteLossError as error:
    ...     print(error)  # doctest: +ELLIPSIS
    train: the loss became nan at epoch 1, batch 1; training stopped before ...
    """

    def __init__(self, check_weights: bool = True, stage: str = "train"):
        super().__init__()
        self.check_weights = check_weights
        self.stage = stage
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def _raise(self, value: float, batch: int | None, name: str = "loss"):
        where = f"epoch {self._epoch + 1}" + ("" if batch is None else f", batch {batch + 1}")
        what = "the loss" if name == "loss" else f"weight {name}"
        raise NonFiniteLossError(
            f"{self.stage}: {what} became {value} at {where}; training stopped before this "
            "epoch was backed up. Lower the learning rate or check the data for NaN/inf "
            "pixels, then start afresh (--overwrite).",
            epoch=self._epoch,
            batch=batch,
            value=value,
            name=name,
        )

    @staticmethod
    def _loss(logs) -> float | None:
        if not logs or logs.get("loss") is None:
            return None
        return float(np.asarray(logs["loss"]))

    def on_train_batch_end(self, batch, logs=None):
        loss = self._loss(logs)
        if loss is not None and not math.isfinite(loss):
            self._raise(loss, batch)

    def on_epoch_end(self, epoch, logs=None):
        self._epoch = epoch
        loss = self._loss(logs)
        if loss is not None and not math.isfinite(loss):
            self._raise(loss, None)
        if self.check_weights and self.model is not None:
            for weight in self.model.trainable_weights:
                values = keras.ops.convert_to_numpy(weight.value)
                if not np.isfinite(values).all():
                    bad = values[~np.isfinite(values)].flat[0]
                    self._raise(float(bad), None, name=weight.path)

    def get_config(self) -> dict:
        return {"check_weights": self.check_weights, "stage": self.stage}
