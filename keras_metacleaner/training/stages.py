"""The stages of a run: compile, callbacks, fit (first stage, then the optional fine-tuning).

A stage is one `fit` on a repeated dataset with the run's callbacks: the
non-finite guard, learning rate and validation score in the logs, the
resumable history, the CSV log, `BackupAndRestore`, TensorBoard, the method's
own callbacks and the one-line epoch summary, in that order (each callback
sees what the ones before it added to the logs; an epoch whose state is backed
up is always in the logs, and a non-finite epoch is neither kept nor saved).
"""

from __future__ import annotations

import dataclasses
import os

import keras
import tensorflow as tf

from keras_metacleaner.training import callbacks as kmc_callbacks
from keras_metacleaner.training import keras_workarounds
from keras_metacleaner.training.config import TrainConfig
from keras_metacleaner.training.guards import StopOnNonFinite
from keras_metacleaner.training.pipelines import distribute_options


@dataclasses.dataclass
class Dirs:
    """Where a task writes.

    Attributes:
        output: model_dir on the chief, a temporary directory elsewhere.
        backup: this task's BackupAndRestore state (kept under model_dir).
        chief: whether this task writes the run's files.
    """

    output: str
    backup: str
    chief: bool


def compile_model(model: keras.Model, optimizer, config: TrainConfig, stage: str = "train"):
    """Compiles with the method's loss (plain cross-entropy for the fine-tuning stage)."""
    loss = "sparse_categorical_crossentropy"
    if stage == "train":
        make_loss = config.method_spec.loss
        loss = None if make_loss is None else make_loss(config.method_spec.args)
    kwargs = {"optimizer": optimizer, "metrics": ["accuracy"]}
    if loss is not None:
        kwargs["loss"] = loss
    model.compile(**kwargs)


def check_replicas(config: TrainConfig, replicas: int) -> None:
    """A replica's share of the batch must hold whole subsets (never cut one in two)."""
    grouped = config.method_spec.grouped
    unit = config.batch_size // config.subset_size if grouped else config.batch_size
    if unit % replicas:
        raise ValueError(
            f"{'K = batch_size / subset_size' if grouped else 'batch_size'}={unit} must be "
            f"divisible by the {replicas} replicas of strategy={config.strategy}."
        )


def stage_callbacks(dirs: Dirs, stage: str, epochs: int, selection=None, extra=()) -> list:
    """The callbacks of one stage, in the order the module docstring gives."""
    suffix = "" if stage == "train" else f"_{stage}"
    return [
        # First: an epoch whose loss or weights turned non-finite stops the run before the
        # selection keeps its weights or BackupAndRestore saves it.
        StopOnNonFinite(stage=stage),
        kmc_callbacks.LearningRateLogger(),
        *([selection] if selection is not None else []),
        kmc_callbacks.EpochHistory(os.path.join(dirs.output, f"history{suffix}.json"), stage=stage),
        keras.callbacks.CSVLogger(os.path.join(dirs.output, f"log{suffix}.csv"), append=True),
        keras.callbacks.BackupAndRestore(
            os.path.join(dirs.backup, stage), double_checkpoint=True, delete_checkpoint=False
        ),
        keras.callbacks.TensorBoard(os.path.join(dirs.output, "logs", stage)),
        *extra,
        kmc_callbacks.EpochSummary(epochs, stage=stage),
    ]


def fit_stage(
    model: keras.Model,
    dataset: tf.data.Dataset | tf.distribute.DistributedDataset,
    stage: str,
    epochs: int,
    steps: int,
    *,
    config: TrainConfig,
    dirs: Dirs,
    test_ds: tf.data.Dataset,
    strategy: tf.distribute.Strategy,
    selection=None,
    extra=(),
    build_batch: tf.data.Dataset | None = None,
) -> list[dict]:
    """Fits one stage ("train" or "finetune") on a repeated dataset; returns all its epochs.

    `dataset` is a repeated `tf.data.Dataset` (auto-sharded by element under
    multi_worker) or an already distributed dataset
    (`pipelines.distributed_grouped_pipeline`), which `fit` takes as it is.
    The multi-worker build workaround needs an undistributed batch: the first
    of `build_batch` (required with a distributed dataset), else of `dataset`.

    The returned list comes from `EpochHistory`, not from fit's History: it
    also holds the epochs trained before a resume.
    """
    multi_worker = config.strategy == "multi_worker"
    if isinstance(dataset, tf.distribute.DistributedDataset):
        if build_batch is None:
            raise ValueError("fit_stage: a distributed dataset needs `build_batch`.")
    else:
        dataset = distribute_options(dataset.prefetch(tf.data.AUTOTUNE), multi_worker)
        build_batch = dataset if build_batch is None else build_batch
    cbs = stage_callbacks(dirs, stage, epochs, selection, extra)
    if multi_worker:
        keras_workarounds.build_before_multi_worker_fit(model, build_batch, strategy)
    verbose = config.verbose if config.verbose == "auto" else int(config.verbose)
    model.fit(
        dataset,
        epochs=epochs,
        steps_per_epoch=steps,
        validation_data=test_ds,
        callbacks=cbs,
        verbose=verbose,
        shuffle=False,
    )
    history = next(cb for cb in cbs if isinstance(cb, kmc_callbacks.EpochHistory))
    return history.epochs
