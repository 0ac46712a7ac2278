"""Model selection without clean labels: validation accuracy per epoch, best weights kept.

`ValidationSelection` scores the model on a validation split after every
epoch (the noisy split of `--validation_split`, or a source's clean one),
adds it to the epoch logs (`noisy_val_accuracy` or `clean_val_accuracy`) and,
when selecting, keeps the weights of the best epoch in a file under the run's
backup directory, with the best score, so that the choice survives a resume.
"""

from __future__ import annotations

import json
import os

import keras
import numpy as np
import tensorflow as tf

from keras_metacleaner.training.results import write_json_atomic

#: The epoch-log key of each validation kind.
LOG_KEYS = {"noisy": "noisy_val_accuracy", "clean": "clean_val_accuracy"}
STATE_FILE = "selection.json"
WEIGHTS_FILE = "selected.weights.h5"


def inference_model(model: keras.Model) -> keras.Model:
    """The images -> probabilities model of any trained model (itself when plain)."""
    if hasattr(model, "inference_model"):
        return model.inference_model()
    return model


def accuracy(predict, dataset: tf.data.Dataset, batch_size: int) -> float:
    """Top-1 accuracy of `predict(images) -> probabilities` on an unbatched dataset."""
    hits = total = 0
    for images, labels in dataset.batch(batch_size).as_numpy_iterator():
        probs = np.asarray(keras.ops.convert_to_numpy(predict(images)))
        hits += int(np.sum(probs.argmax(-1) == labels))
        total += len(labels)
    if not total:
        raise ValueError("The validation split is empty.")
    return hits / total


class ValidationSelection(keras.callbacks.Callback):
    """Validation accuracy in the epoch logs and, optionally, the best epoch's weights.

    Put it before the loggers and before `BackupAndRestore`, so that the
    logged epochs carry the score and a saved epoch has its selection saved.

    Args:
        dataset: unbatched `(image, label)` validation data (test-time transform applied).
        kind: `"noisy"` or `"clean"` (names the log key, see `LOG_KEYS`).
        batch_size: images per forward pass.
        state_dir: where the best weights and score live (kept across a
            resume); None keeps them in memory only.
        select: keep the best epoch's weights (`select_on="noisy_val"`).

    Example:

    >>> ds = tf.data.Dataset.from_tensor_slices((np.zeros((4, 2)), np.zeros(4, "int32")))
    >>> ValidationSelection(ds, "noisy", batch_size=2).key
    'noisy_val_accuracy'
    """

    def __init__(
        self,
        dataset: tf.data.Dataset,
        kind: str,
        batch_size: int,
        state_dir: str | None = None,
        select: bool = False,
    ):
        super().__init__()
        if kind not in LOG_KEYS:
            raise ValueError(f"kind={kind!r}: expected one of {sorted(LOG_KEYS)}.")
        self.dataset = dataset
        self.kind = kind
        self.key = LOG_KEYS[kind]
        self.batch_size = batch_size
        self.state_dir = state_dir
        self.select = select
        self.best_score: float | None = None
        self.best_epoch: int | None = None
        self._predict = None
        state = self._state_path()
        if state and os.path.isfile(state):
            with open(state) as f:
                saved = json.load(f)
            self.best_score, self.best_epoch = saved["score"], saved["epoch"]

    def _state_path(self) -> str | None:
        return os.path.join(self.state_dir, STATE_FILE) if self.state_dir else None

    @property
    def weights_path(self) -> str | None:
        """The file holding the selected weights (None without `state_dir`)."""
        return os.path.join(self.state_dir, WEIGHTS_FILE) if self.state_dir else None

    def set_model(self, model):
        super().set_model(model)
        self._predict = None

    def on_epoch_end(self, epoch, logs=None):
        if self._predict is None:
            inference = inference_model(self.model)
            self._predict = lambda images: inference(images, training=False)
        score = accuracy(self._predict, self.dataset, self.batch_size)
        if logs is not None:
            logs[self.key] = score
        if not self.select or (self.best_score is not None and score <= self.best_score):
            return
        self.best_score, self.best_epoch = float(score), int(epoch)
        if self.state_dir:
            os.makedirs(self.state_dir, exist_ok=True)
            tmp = os.path.join(self.state_dir, ".tmp-" + WEIGHTS_FILE)
            self.model.save_weights(tmp)
            os.replace(tmp, self.weights_path)
            write_json_atomic(self._state_path(), {"epoch": epoch, "score": score})
        else:
            self._weights = [np.array(w) for w in self.model.get_weights()]

    def restore_best(self, model: keras.Model | None = None) -> bool:
        """Loads the selected weights into `model` (default: the trained one).

        Returns:
            Whether weights were restored (False when nothing was selected).
        """
        model = model or self.model
        if self.best_epoch is None:
            return False
        if self.state_dir:
            model.load_weights(self.weights_path)
        else:
            model.set_weights(self._weights)
        return True
