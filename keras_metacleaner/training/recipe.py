"""The training recipe: load -> noise -> group -> build -> fit -> fine-tune -> evaluate.

`run(TrainConfig(...))` is what `tools/train.py` calls; it parses no flags and
prints nothing (progress goes through Keras' progress bar and `absl.logging`).
It returns the results dictionary and, on the chief, writes it to
`<model_dir>/results.json`. A `model_dir` that holds a finished run is refused
unless `overwrite=True`; an interrupted one resumes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
import time
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from keras_metacleaner import analysis, data, export
from keras_metacleaner.layers.weighting import DEFAULT_WEIGHTING
from keras_metacleaner.models import (
    DEFAULT_MEMBER_LOSS_WEIGHT,
    DEFAULT_SUBSET_LOSS_WEIGHTS,
    SUBSET_LOSS_WEIGHTS,
    MetaCleanerModel,
    get_backbone,
)
from keras_metacleaner.training import callbacks as kmc_callbacks
from keras_metacleaner.training import evaluation, schedule
from keras_metacleaner.training import strategy as kmc_strategy
from keras_metacleaner.training.results import read_json, write_json_atomic

METHODS = ("baseline", "metacleaner", "loss_reweight")
NOISE_TYPES = ("none", "symmetric", "pairflip")
#: `--noise_type=transition:PATH` reads a [C, C] row-stochastic matrix (.npy, .csv, .txt).
TRANSITION_PREFIX = "transition:"
#: `--finetune_dataset=split:NAME` fine-tunes on an extra split of the main dataset.
SPLIT_PREFIX = "split:"
#: The record a finished run leaves in its model_dir.
RESULTS_FILE = "results.json"
# Keys every results.json of `run` has; a file without them is no finished run's record.
_RESULT_KEYS = ("method", "flags", "history", "test_accuracy")


@dataclasses.dataclass
class TrainConfig:
    """Everything a training run needs; one field per `tools/train.py` flag.

    Args:
        dataset: a `keras_metacleaner.data.load` spec.
        model_dir: where backups, logs, `model.keras` and `results.json` go.
        method: `"baseline"` (plain classifier on single images),
            `"metacleaner"` (Eq. 3 hallucination) or `"loss_reweight"` (Table 3).
        noise_type: `"none"`, `"symmetric"`, `"pairflip"` or
            `"transition:PATH"`; applied to the training labels only.
        noise_rate: fraction of training labels to corrupt, in [0, 1).
        weighting: Noisy Weighting name (`keras_metacleaner.layers.WEIGHTINGS`).
        hidden_units: hidden width of the weighting (384 / 512 in the paper).
        member_loss_weight: `MetaCleanerModel(member_loss_weight=...)`: weight
            of the α-weighted per-image loss added to the hallucinated one
            (0 = the paper's method; the default measured best).
        subset_loss_weights: `MetaCleanerModel(subset_loss_weights=...)`:
            None (the paper: every subset's hallucinated loss counts the
            same), `"max_alpha"` or `"mean_alpha"`.
        subset_size: N, images per subset.
        batch_size: images per step (K·N for the MetaCleaner methods).
        backbone: `"small_cnn"`, `"resnet50"` or `"wide_resnet_28_10"`.
        backbone_weights: None, `"imagenet"` or a local weights file (ResNet50).
        dropout: WideResNet dropout.
        image_size: resize images to this square size; None keeps the source's.
        augment: random crop / flip while training.
        epochs: epochs of the MetaCleaner (or baseline) stage.
        learning_rate: initial learning rate.
        lr_decay_epochs: divide the rate by `1/lr_decay_factor` every this many
            epochs (0: constant).
        lr_decay_factor: multiplier at each decay.
        momentum: SGD momentum.
        weight_decay: coupled L2 coefficient (see `schedule.SGDL2`).
        train_subset: use only the first this many training examples (0: all).
        finetune_epochs: epochs of the second stage (cleaner unloaded, single
            images); 0 skips it.
        finetune_dataset: None (the same noisy training data), a `load` spec,
            or `"split:NAME"` for an extra split of the main dataset
            (e.g. Clothing1M's `clean_train`).
        finetune_subset: use only the first this many fine-tuning examples.
        finetune_learning_rate: rate of the second stage; 0 means the rate the
            first stage ended with.
        strategy: `"default"`, `"mirrored"` or `"multi_worker"`.
        mixed_precision: train with the `mixed_float16` policy.
        seed: seeds Python, NumPy, TF, the noise and every shuffle.
        export_dir: if set, the chief exports a SavedModel for TF Serving there.
        alpha_auroc_examples: training examples scored for the α AUROC.
        verbose: Keras `fit` verbosity (`"auto"`, 0, 1, 2).
        overwrite: replace a finished run in `model_dir` (see `finished_run`):
            its results, model and logs are removed and training starts
            afresh. Without it `run` refuses such a directory. An interrupted
            run resumes either way.

    Example:

    >>> TrainConfig(dataset="fashion_mnist", model_dir="/tmp/run").method
    'metacleaner'
    """

    dataset: str
    model_dir: str
    method: str = "metacleaner"
    noise_type: str = "none"
    noise_rate: float = 0.0
    weighting: str = DEFAULT_WEIGHTING
    hidden_units: int = 384
    member_loss_weight: float = DEFAULT_MEMBER_LOSS_WEIGHT
    subset_loss_weights: str | None = DEFAULT_SUBSET_LOSS_WEIGHTS
    subset_size: int = 4
    batch_size: int = 128
    backbone: str = "small_cnn"
    backbone_weights: str | None = None
    dropout: float = 0.3
    image_size: int | None = None
    augment: bool = False
    epochs: int = 10
    learning_rate: float = 0.01
    lr_decay_epochs: int = 0
    lr_decay_factor: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 0.0
    train_subset: int = 0
    finetune_epochs: int = 0
    finetune_dataset: str | None = None
    finetune_subset: int = 0
    finetune_learning_rate: float = 0.0
    strategy: str = "default"
    mixed_precision: bool = False
    seed: int = 0
    export_dir: str | None = None
    alpha_auroc_examples: int = 2000
    verbose: Any = "auto"
    overwrite: bool = False

    def validate(self) -> None:
        """Checks values that need no data; raises `ValueError` naming the field.

        Example:

        >>> config = TrainConfig(dataset="x", model_dir="/tmp/r", batch_size=30)
        >>> config.validate()  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: batch_size=30 must be divisible by subset_size=4 (K = ...
        """
        if self.method not in METHODS:
            raise ValueError(f"method={self.method!r}: expected one of {METHODS}.")
        if self.noise_type not in NOISE_TYPES and not self.noise_type.startswith(TRANSITION_PREFIX):
            raise ValueError(
                f"noise_type={self.noise_type!r}: expected one of {NOISE_TYPES} or "
                f"'{TRANSITION_PREFIX}PATH'."
            )
        if not 0.0 <= self.noise_rate < 1.0:
            raise ValueError(f"noise_rate={self.noise_rate!r} must be in [0, 1).")
        if self.subset_size < 1:
            raise ValueError(f"subset_size={self.subset_size} must be >= 1.")
        if self.batch_size < 1 or self.batch_size % self.subset_size:
            raise ValueError(
                f"batch_size={self.batch_size} must be divisible by subset_size="
                f"{self.subset_size} (K = batch_size / subset_size subsets per step)."
            )
        for name in (
            "epochs",
            "finetune_epochs",
            "train_subset",
            "finetune_subset",
            "lr_decay_epochs",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0.")
        if self.epochs + self.finetune_epochs < 1:
            raise ValueError("epochs + finetune_epochs must be >= 1.")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate={self.learning_rate} must be > 0.")
        if self.member_loss_weight < 0:
            raise ValueError(f"member_loss_weight={self.member_loss_weight} must be >= 0.")
        if self.subset_loss_weights not in SUBSET_LOSS_WEIGHTS:
            raise ValueError(
                f"subset_loss_weights={self.subset_loss_weights!r}: expected one of "
                f"{SUBSET_LOSS_WEIGHTS}."
            )
        if not 0 < self.lr_decay_factor <= 1:
            raise ValueError(f"lr_decay_factor={self.lr_decay_factor} must be in (0, 1].")
        if self.image_size is not None and self.image_size < 8:
            raise ValueError(f"image_size={self.image_size} must be >= 8.")
        if self.strategy not in kmc_strategy.STRATEGIES:
            raise ValueError(
                f"strategy={self.strategy!r}: expected one of {kmc_strategy.STRATEGIES}."
            )


# ---------------------------------------------------------------------- data
def load_transition(path: str, num_classes: int | None = None) -> np.ndarray:
    """Reads a `[C, C]` noise transition matrix from `.npy`, `.csv` or `.txt`.

    Args:
        path: the file.
        num_classes: expected C, checked when given.

    Returns:
        float64 `[C, C]`.

    Example:

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "t.npy"); np.save(p, np.eye(3))
    >>> load_transition(p).shape
    (3, 3)
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"noise transition file {path!r} does not exist.")
    matrix = (
        np.load(path)
        if path.endswith(".npy")
        else np.loadtxt(path, delimiter=None if path.endswith(".txt") else ",")
    )
    matrix = np.asarray(matrix, np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(
            f"noise transition {path!r} must be a square [C, C] matrix, got {matrix.shape}."
        )
    if num_classes is not None and matrix.shape[0] != num_classes:
        raise ValueError(
            f"noise transition {path!r} is {matrix.shape[0]}x{matrix.shape[0]} but the dataset has "
            f"{num_classes} classes."
        )
    return matrix


def _map_images(dataset: tf.data.Dataset, fn) -> tf.data.Dataset:
    return dataset.map(lambda x, y: (fn(x), y), num_parallel_calls=tf.data.AUTOTUNE)


def _image_bytes(shape) -> int:
    return int(np.prod([d or 224 for d in shape])) * 4


def _shuffle_buffer(size: int, shape) -> int:
    # Enough to mix well, bounded to ~256 MB of decoded images.
    return max(1, min(size, max(1024, 256 * 2**20 // _image_bytes(shape))))


def _distribute_options(dataset: tf.data.Dataset, multi_worker: bool) -> tf.data.Dataset:
    options = tf.data.Options()
    options.deterministic = True
    if multi_worker:
        # Sources are in memory or generators: shard by element, not by file.
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
    return dataset.with_options(options)


@dataclasses.dataclass
class _Data:
    train: tf.data.Dataset  # unbatched (image, noisy label), unshuffled
    test: tf.data.Dataset
    info: Any
    labels: np.ndarray  # the labels training sees
    clean: np.ndarray | None  # true labels where known
    noise_injected: bool


def prepare_data(config: TrainConfig) -> _Data:
    """Loads the dataset, cuts `train_subset` and injects label noise.

    Args:
        config: the run's configuration.

    Returns:
        An object with `train`, `test`, `info`, `labels` (the training
        labels after noise), `clean` (true labels or None) and
        `noise_injected`.

    Example:

    >>> d = prepare_data(TrainConfig("npz:toy.npz", "/tmp/r"))  # doctest: +SKIP
    """
    train, test, info = data.load(config.dataset, image_size=config.image_size, seed=config.seed)
    labels = np.asarray(info.train_labels, np.int32)
    clean = (
        None if info.train_clean_labels is None else np.asarray(info.train_clean_labels, np.int32)
    )
    if config.train_subset and config.train_subset < len(labels):
        train = data.take(train, config.train_subset)
        labels = labels[: config.train_subset]
        clean = None if clean is None else clean[: config.train_subset]
    injected = config.noise_type != "none" and (
        config.noise_rate > 0 or config.noise_type.startswith(TRANSITION_PREFIX)
    )
    if injected:
        if config.noise_type.startswith(TRANSITION_PREFIX):
            kind = "transition"
            matrix = load_transition(config.noise_type[len(TRANSITION_PREFIX) :], info.num_classes)
        else:
            kind, matrix = config.noise_type, None
        if clean is None:
            clean = labels
        labels, _ = data.add_label_noise(
            labels, config.noise_rate, kind, info.num_classes, seed=config.seed, transition=matrix
        )
        train = data.replace_labels(train, labels)
    return _Data(train, test, info, labels, clean, injected)


def _test_pipeline(config: TrainConfig, test: tf.data.Dataset, batch_size: int) -> tf.data.Dataset:
    return _test_images(config, test).batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _augment_fn(config: TrainConfig):
    if not config.augment:
        return None
    return data.preprocessing.train_augment(config.image_size or None)


def _grouped_pipeline(config: TrainConfig, prepared: _Data) -> tf.data.Dataset:
    return data.group_by_class(
        prepared.train,
        subset_size=config.subset_size,
        groups_per_batch=config.batch_size // config.subset_size,
        seed=config.seed,
        num_classes=prepared.info.num_classes,
        augment=_augment_fn(config),
        labels=prepared.labels,
        num_replicas=1,  # checked against the strategy by `_check_replicas`
    )


def _single_pipeline(
    config: TrainConfig, train: tf.data.Dataset, size: int, shape, seed: int
) -> tf.data.Dataset:
    train = train.shuffle(_shuffle_buffer(size, shape), seed=seed, reshuffle_each_iteration=True)
    augment = _augment_fn(config)
    if augment is not None:
        train = _map_images(train, augment)
    return train.batch(config.batch_size, drop_remainder=True)


# --------------------------------------------------------------------- model
def plain_classifier(
    backbone: keras.Model, num_classes: int, name: str = "baseline"
) -> keras.Model:
    """backbone -> Dense -> softmax: the baseline, same head as `inference_model()`.

    Args:
        backbone: images -> features `[B, D]`.
        num_classes: number of classes.
        name: model name.

    Returns:
        A functional `keras.Model`, images -> probabilities (float32).

    Example:

    >>> from keras_metacleaner.models import small_cnn
    >>> plain_classifier(small_cnn(), 10).output_shape
    (None, 10)
    """
    images = keras.Input(backbone.input_shape[1:], name="images")
    logits = keras.layers.Dense(num_classes, name="classifier")(backbone(images))
    outputs = keras.layers.Activation("softmax", dtype="float32", name="probabilities")(logits)
    return keras.Model(images, outputs, name=name)


def build_model(config: TrainConfig, num_classes: int, image_shape) -> keras.Model:
    """The model of `config.method` (call inside the strategy's scope).

    Args:
        config: the run's configuration.
        num_classes: number of classes.
        image_shape: `(H, W, C)` the model takes.

    Returns:
        A `MetaCleanerModel` (metacleaner, loss_reweight) or a plain classifier.

    Example:

    >>> build_model(TrainConfig("x", "/tmp/r", method="baseline"), 10, (28, 28, 1)).name
    'baseline'
    """
    weights = config.backbone_weights if config.backbone == "resnet50" else None
    backbone = get_backbone(
        config.backbone, tuple(image_shape), weights=weights, dropout=config.dropout
    )
    if config.method == "baseline":
        return plain_classifier(backbone, num_classes)
    return MetaCleanerModel(
        backbone,
        num_classes=num_classes,
        subset_size=config.subset_size,
        weighting=config.weighting,
        hidden_units=config.hidden_units,
        member_loss_weight=config.member_loss_weight if config.method == "metacleaner" else 0.0,
        subset_loss_weights=config.subset_loss_weights,
        mode="hallucinate" if config.method == "metacleaner" else "loss_reweight",
        seed=config.seed,
        name=config.method,
    )


def _compile(model: keras.Model, optimizer) -> None:
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])


def _build_before_multi_worker_fit(model: keras.Model, dataset: tf.data.Dataset, strategy) -> None:
    """Builds metrics, loss and optimizer state from a local batch, then skips Keras' own build.

    Under MultiWorkerMirroredStrategy, Keras 3's `fit` / `evaluate` first
    MEAN-reduces a distributed batch to build state symbolically, which fails
    ("Attempt to convert a value (PerReplica...)", keras-team/keras#20585).
    Building here from an undistributed batch makes that step unnecessary.
    """
    for batch in dataset.take(1):
        with strategy.scope():
            model._symbolic_build(data_batch=batch)
            if model.optimizer is not None and not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None


# ----------------------------------------------------------------- the stages
@dataclasses.dataclass
class _Dirs:
    output: str  # model_dir on the chief, a temporary directory elsewhere
    backup: str  # BackupAndRestore state of this task (kept under model_dir)
    chief: bool


def _stage_callbacks(dirs: _Dirs, stage: str, epochs: int, extra=()) -> list:
    suffix = "" if stage == "train" else f"_{stage}"
    return [
        kmc_callbacks.LearningRateLogger(),
        kmc_callbacks.EpochHistory(os.path.join(dirs.output, f"history{suffix}.json"), stage=stage),
        keras.callbacks.CSVLogger(os.path.join(dirs.output, f"log{suffix}.csv"), append=True),
        # After the loggers: an epoch whose state is saved is always in the logs.
        keras.callbacks.BackupAndRestore(
            os.path.join(dirs.backup, stage), double_checkpoint=True, delete_checkpoint=False
        ),
        keras.callbacks.TensorBoard(os.path.join(dirs.output, "logs", stage)),
        *extra,
        kmc_callbacks.EpochSummary(epochs, stage=stage),
    ]


def _fit_stage(
    model: keras.Model,
    dataset: tf.data.Dataset,
    stage: str,
    epochs: int,
    steps: int,
    *,
    config: TrainConfig,
    dirs: _Dirs,
    test_ds: tf.data.Dataset,
    strategy,
    multi_worker: bool,
    extra=(),
) -> list[dict]:
    """Fits one stage ("train" or "finetune") on a repeated dataset; returns its epochs."""
    dataset = _distribute_options(dataset.prefetch(tf.data.AUTOTUNE), multi_worker)
    cbs = _stage_callbacks(dirs, stage, epochs, extra)
    if multi_worker:
        _build_before_multi_worker_fit(model, dataset, strategy)
    model.fit(
        dataset,
        epochs=epochs,
        steps_per_epoch=steps,
        validation_data=test_ds,
        callbacks=cbs,
        verbose=config.verbose,
        shuffle=False,
    )
    # EpochHistory, not fit's History: it also holds the epochs before a resume.
    return cbs[1].epochs


def _probe_batch(groups: tf.data.Dataset, max_subsets: int = 16):
    for x, y in groups.take(1):
        return x.numpy()[:max_subsets], y.numpy()[:max_subsets]
    raise ValueError(
        "The grouped training data is empty: too few examples per class for one subset."
    )


def _alpha_auroc(model, prepared: _Data, config: TrainConfig) -> tuple[float | None, int]:
    if prepared.clean is None or config.alpha_auroc_examples <= 0:
        return None, 0
    budget = max(
        config.subset_size * 2,
        min(config.alpha_auroc_examples, 512 * 2**20 // _image_bytes(prepared.info.image_shape)),
    )
    count = min(budget, len(prepared.labels))
    images = np.stack([x.numpy() for x, _ in _test_images(config, prepared.train).take(count)])
    labels = prepared.labels[:count]
    is_correct = labels == prepared.clean[:count]
    if is_correct.all() or not is_correct.any():
        return None, count
    scores = analysis.alpha_scores(model, images, labels, seed=config.seed)
    value = float(analysis.auroc(scores, is_correct))
    return (value if np.isfinite(value) else None), count


def _test_images(config: TrainConfig, dataset: tf.data.Dataset) -> tf.data.Dataset:
    if config.augment and config.image_size:
        return _map_images(dataset, data.preprocessing.test_transform(config.image_size))
    return dataset


def _finetune_source(config: TrainConfig, prepared: _Data):
    """(dataset, size) of the second stage's single images."""
    spec = config.finetune_dataset
    if not spec:
        train, size = prepared.train, len(prepared.labels)
    elif spec.startswith(SPLIT_PREFIX):
        name = spec[len(SPLIT_PREFIX) :]
        if name not in prepared.info.splits:
            raise ValueError(
                f"finetune_dataset={spec!r}: the dataset has no split {name!r}; it has "
                f"{sorted(prepared.info.splits)}."
            )
        train = prepared.info.splits[name]
        size = int(train.cardinality())
        if size < 0:
            size = sum(1 for _ in train)
    else:
        train, _, info = data.load(spec, image_size=config.image_size, seed=config.seed)
        if info.num_classes != prepared.info.num_classes:
            raise ValueError(
                f"finetune_dataset={spec!r} has {info.num_classes} classes; the training data has "
                f"{prepared.info.num_classes}."
            )
        size = info.train_size
    if config.finetune_subset and config.finetune_subset < size:
        train, size = data.take(train, config.finetune_subset), config.finetune_subset
    return train, size


def _check_replicas(config: TrainConfig, replicas: int) -> None:
    # A replica's share of the batch must hold whole subsets (never cut one in two).
    grouped = config.method != "baseline"
    unit = config.batch_size // config.subset_size if grouped else config.batch_size
    if unit % replicas:
        raise ValueError(
            f"{'K = batch_size / subset_size' if grouped else 'batch_size'}={unit} must be "
            f"divisible by the {replicas} replicas of --strategy={config.strategy}."
        )


_RUN_LOGS = ("history.json", "history_finetune.json", "log.csv", "log_finetune.csv")
# What a run leaves in its output directory besides the logs above.
_RUN_OUTPUTS = (RESULTS_FILE, "model.keras")
_TENSORBOARD_DIRS = ("train", "finetune", "alpha")  # under <output>/logs/


def finished_run(model_dir: str) -> str | None:
    """The `results.json` of a finished run in `model_dir`, or None.

    A run is finished when its `results.json` is a complete record (valid JSON
    with the keys `run` writes) and no `backup/` of an interrupted run is
    there: an interrupted run resumes, even over an older run's results.

    Args:
        model_dir: a training run's directory (need not exist).

    Returns:
        The path of the finished run's `results.json`, or None.

    Example:

    >>> import tempfile
    >>> finished_run(tempfile.mkdtemp()) is None
    True
    """
    path = os.path.join(model_dir, RESULTS_FILE)
    if not os.path.isfile(path) or os.path.isdir(os.path.join(model_dir, "backup")):
        return None
    try:
        record = read_json(path)
    except (OSError, ValueError):
        return None
    if isinstance(record, dict) and all(key in record for key in _RESULT_KEYS):
        return path
    return None


def _clear_previous_run(output: str) -> None:
    """Removes an earlier run's outputs, so a fresh start neither appends to nor mixes with them."""
    for name in _RUN_LOGS + _RUN_OUTPUTS:
        path = os.path.join(output, name)
        if os.path.isfile(path):
            os.remove(path)
    for name in _TENSORBOARD_DIRS:
        shutil.rmtree(os.path.join(output, "logs", name), ignore_errors=True)


def _median(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else None


def run(config: TrainConfig, strategy: tf.distribute.Strategy | None = None) -> dict:
    """Trains, fine-tunes and evaluates as `config` says; returns the results.

    The chief writes `results.json`, `model.keras` and (with `export_dir`) a
    SavedModel; other workers of a multi-worker run write to a temporary
    directory they delete. `BackupAndRestore` state lives in
    `<model_dir>/backup/<task>/`: running the same config again after a crash
    resumes from the last finished epoch; it is deleted when the run ends.
    A `model_dir` holding a finished run (`finished_run`) is refused unless
    `config.overwrite`, which removes that run's results, model and logs first.

    Args:
        config: the run's configuration.
        strategy: a `tf.distribute.Strategy`; created from `config.strategy`
            when None (create it first thing in a program for multi_worker).

    Returns:
        The results dictionary (the content of `results.json`).

    Raises:
        FileExistsError: `model_dir` holds a finished run and
            `config.overwrite` is False (nothing is touched).

    Example:

    >>> results = run(TrainConfig("fashion_mnist", "runs/demo", epochs=1))  # doctest: +SKIP
    >>> results["test_accuracy"]  # doctest: +SKIP
    """
    config.validate()
    finished = finished_run(config.model_dir)
    if finished and not config.overwrite:
        raise FileExistsError(
            f"model_dir={config.model_dir!r} holds a finished run ({finished}); pass "
            "overwrite=True to replace it, or choose another model_dir."
        )
    if strategy is None:
        strategy = kmc_strategy.get_strategy(config.strategy)
    _check_replicas(config, strategy.num_replicas_in_sync)
    keras.utils.set_random_seed(config.seed)
    previous_policy = keras.config.dtype_policy()
    if config.mixed_precision:
        keras.config.set_dtype_policy("mixed_float16")
    chief = kmc_strategy.is_chief()
    task = kmc_strategy.task_id()
    output = config.model_dir if chief else tempfile.mkdtemp(prefix=f"kmc-{task}-")
    dirs = _Dirs(output, os.path.join(config.model_dir, "backup", task), chief)
    os.makedirs(dirs.output, exist_ok=True)
    if not os.path.isdir(dirs.backup):
        # A fresh start (nothing to resume): the CSV and history logs of an
        # earlier run would otherwise be appended to, and a replaced run's
        # results must not outlive it if this one is interrupted.
        if finished and chief:
            logging.info("Overwriting the finished run in %s.", config.model_dir)
        _clear_previous_run(dirs.output)
    patch = (
        kmc_strategy.keras_multi_worker_reduction()
        if config.strategy == "multi_worker"
        else contextlib.nullcontext()
    )
    try:
        with patch:
            results = _run(config, strategy, dirs)
    finally:
        keras.config.set_dtype_policy(previous_policy)
        if not chief:
            shutil.rmtree(output, ignore_errors=True)
    shutil.rmtree(dirs.backup, ignore_errors=True)
    # Every task tries: whichever removes its own backup last finds the parent empty.
    with contextlib.suppress(OSError):
        os.rmdir(os.path.join(config.model_dir, "backup"))
    if chief:
        write_json_atomic(os.path.join(config.model_dir, RESULTS_FILE), results)
    return results


def _run(config: TrainConfig, strategy: tf.distribute.Strategy, dirs: _Dirs) -> dict:
    started = time.time()
    multi_worker = config.strategy == "multi_worker"
    replicas = strategy.num_replicas_in_sync
    prepared = prepare_data(config)
    info = prepared.info
    image_shape = tuple(info.image_shape)
    train_size = len(prepared.labels)
    steps = train_size // config.batch_size
    if steps < 1:
        raise ValueError(
            f"batch_size={config.batch_size} is larger than the {train_size} training examples."
        )
    realised = None if prepared.clean is None else float(np.mean(prepared.labels != prepared.clean))
    logging.info(
        "Data %s: %d classes, %d train / %d test examples, images %s, realised noise rate %s.",
        info.name,
        info.num_classes,
        train_size,
        info.test_size,
        image_shape,
        "unknown" if realised is None else f"{realised:.4f}",
    )

    test_ds = _distribute_options(
        _test_pipeline(config, prepared.test, config.batch_size), multi_worker
    )
    history: list[dict] = []
    grouped = config.method != "baseline"
    alpha_summary: dict[str, Any] = {}
    auroc, auroc_count = None, 0

    with strategy.scope():
        model = build_model(config, info.num_classes, image_shape)
        optimizer = schedule.make_optimizer(
            config.learning_rate,
            steps,
            config.lr_decay_epochs,
            config.lr_decay_factor,
            config.momentum,
            config.weight_decay,
        )
        _compile(model, optimizer)

    if config.epochs:
        if grouped:
            groups = _grouped_pipeline(config, prepared)
            probe_x, probe_y = _probe_batch(groups)
            train_ds = groups.repeat()
            alpha_cb = kmc_callbacks.AlphaHistogram(
                os.path.join(dirs.output, "logs", "alpha"), probe_x, probe_y
            )
            extra = [alpha_cb]
        else:
            train_ds = _single_pipeline(
                config, prepared.train, train_size, image_shape, config.seed
            ).repeat()
            extra = []
        history += _fit_stage(
            model,
            train_ds,
            "train",
            config.epochs,
            steps,
            config=config,
            dirs=dirs,
            test_ds=test_ds,
            strategy=strategy,
            multi_worker=multi_worker,
            extra=extra,
        )
        if grouped:
            alpha = alpha_cb.last_alpha if alpha_cb.last_alpha is not None else alpha_cb._alpha()
            floor = float(model.cleaner.alpha_min)
            last = history[-1] if history else {}
            alpha_summary = {
                "train_mean": last.get("alpha_mean"),
                "train_std": last.get("alpha_std"),
                "train_floor_share": last.get("alpha_floor"),
                "probe_mean": float(alpha.mean()),
                "probe_std": float(alpha.std()),
                "probe_floor_share": float(np.mean(alpha <= floor + 1e-3)),
                "probe_histogram": np.histogram(alpha, bins=10)[0].tolist(),
                "floor": floor,
            }
            auroc, auroc_count = _alpha_auroc(model, prepared, config)

    classifier = model  # MetaCleanerModel.evaluate classifies single images, cleaner unused
    finetune_lr = None
    if config.finetune_epochs:
        finetune_train, finetune_size = _finetune_source(config, prepared)
        finetune_steps = finetune_size // config.batch_size
        if finetune_steps < 1:
            raise ValueError(
                f"batch_size={config.batch_size} is larger than the {finetune_size} "
                "fine-tuning examples."
            )
        finetune_lr = config.finetune_learning_rate or schedule.learning_rate_after(
            config.learning_rate, config.epochs, config.lr_decay_epochs, config.lr_decay_factor
        )
        with strategy.scope():
            if grouped:
                classifier = model.inference_model()
            _compile(
                classifier,
                schedule.make_optimizer(
                    finetune_lr,
                    finetune_steps,
                    momentum=config.momentum,
                    weight_decay=config.weight_decay,
                ),
            )
        finetune_ds = _single_pipeline(
            config, finetune_train, finetune_size, image_shape, config.seed + 1
        ).repeat()
        history += _fit_stage(
            classifier,
            finetune_ds,
            "finetune",
            config.finetune_epochs,
            finetune_steps,
            config=config,
            dirs=dirs,
            test_ds=test_ds,
            strategy=strategy,
            multi_worker=multi_worker,
        )

    # Eager forward passes over the whole, unsharded test set: the same exact
    # number on every worker of any strategy (Keras' distributed evaluate
    # shards the data across workers).
    inference = model.inference_model() if grouped else model
    final = evaluation.evaluate_classifier(
        lambda images: keras.ops.convert_to_numpy(inference(images, training=False)),
        _test_images(config, prepared.test),
        info.num_classes,
        batch_size=config.batch_size,
    )
    test_accuracy = final["top1"]
    per_epoch = [e["val_accuracy"] for e in history if e.get("val_accuracy") is not None]
    best = max(per_epoch + [test_accuracy])

    model_path = os.path.join(dirs.output, "model.keras")
    tmp_path = os.path.join(dirs.output, ".tmp-model.keras")
    model.save(tmp_path)
    os.replace(tmp_path, model_path)
    export_path = None
    if config.export_dir and dirs.chief:
        export_path = export.export_for_serving(
            model, config.export_dir, class_names=info.class_names
        )

    return {
        "method": config.method,
        "flags": dataclasses.asdict(config),
        "dataset": {
            "name": info.name,
            "num_classes": info.num_classes,
            "train_size": train_size,
            "test_size": info.test_size,
            "image_shape": list(image_shape),
        },
        "class_names": list(info.class_names),
        "noise": {
            "type": config.noise_type,
            "rate": config.noise_rate,
            "injected": prepared.noise_injected,
            "realised_rate": realised,
        },
        "realised_noise_rate": realised,
        "history": history,
        "test_accuracy": test_accuracy,
        "test_top5_accuracy": final["top5"],
        "test_per_class_accuracy": final["per_class_accuracy"],
        "best_test_accuracy": float(best),
        "alpha": alpha_summary or None,
        "alpha_auroc": auroc,
        "alpha_auroc_examples": auroc_count,
        "seconds_per_epoch": _median(e.get("seconds") for e in history if e["stage"] == "train"),
        "seconds_per_finetune_epoch": _median(
            e.get("seconds") for e in history if e["stage"] == "finetune"
        ),
        "finetune_learning_rate": finetune_lr,
        "steps_per_epoch": steps,
        "strategy": {"name": config.strategy, "replicas": replicas},
        "model_path": os.path.join(config.model_dir, "model.keras") if dirs.chief else None,
        "export_path": export_path,
        "wall_seconds": time.time() - started,
    }
