"""The training recipe: validate -> load and check -> claim the directory -> train -> record.

`run(TrainConfig(...))` is what `tools/train.py` and `benchmarks/accuracy.py`
call; it parses no flags and prints nothing (progress goes through Keras'
progress bar and `absl.logging`). The order is the guarantee of
docs/training.md: the configuration is validated (no TensorFlow needed), the
data is loaded and every data-dependent check runs, the run directory is
checked (foreign files, a finished run, a resume under other settings), and
only then is anything written. The results go to `<model_dir>/results.json`
before the backup of an interrupted run is removed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
import time
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from keras_metacleaner import analysis, export
from keras_metacleaner.models import get_backbone
from keras_metacleaner.training import callbacks as kmc_callbacks
from keras_metacleaner.training import evaluation, keras_workarounds, pipelines, schedule, stages
from keras_metacleaner.training import strategy as kmc_strategy
from keras_metacleaner.training.config import TrainConfig
from keras_metacleaner.training.methods import plain_classifier
from keras_metacleaner.training.preparation import PreparedData, prepare_data
from keras_metacleaner.training.results import (
    RESULTS_FILE,
    accuracy_summary,
    git_commit,
)
from keras_metacleaner.training.run_directory import RESUME_NEUTRAL, RunDirectory, entry_inside
from keras_metacleaner.training.selection import LOG_KEYS, ValidationSelection, inference_model

__all__ = ["build_model", "finished_run", "plain_classifier", "prepare_run", "run", "train"]


def run_directory(path: str) -> RunDirectory:
    """The `RunDirectory` of a run's `model_dir` (the one list of run files, resume checks)."""
    return RunDirectory(path)


def finished_run(model_dir: str) -> str | None:
    """The `results.json` of a finished run in `model_dir`, or None.

    Example:

    >>> import tempfile
    >>> finished_run(tempfile.mkdtemp()) is None
    True
    """
    path = os.path.join(model_dir, RESULTS_FILE)
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    return path if isinstance(record, dict) and "test_accuracy" in record else None


def build_model(
    config: TrainConfig, num_classes: int, image_shape, num_examples: int | None = None
) -> keras.Model:
    """The model of `config.method` (call inside the strategy's scope).

    Args:
        config: the run's configuration (resolved or not).
        num_classes: number of classes.
        image_shape: `(H, W, C)` the model takes.
        num_examples: training examples (ELR keeps a target per example).

    Returns:
        The method's model (`training.methods.METHODS[method].build`).

    Example:

    >>> build_model(TrainConfig("x", "/tmp/r", method="baseline"), 10, (28, 28, 1)).name
    'baseline'
    """
    config = config.resolved()
    weights = config.backbone_weights if config.backbone == "resnet50" else None

    def backbone_fn(seed: int):
        return get_backbone(
            config.backbone, tuple(image_shape), weights=weights, dropout=config.dropout
        )

    return config.method_spec.build(config, backbone_fn, num_classes, num_examples or 0)


@dataclasses.dataclass
class PreparedRun:
    """A run whose every check passed and that has written nothing yet (`prepare_run`)."""

    config: TrainConfig
    strategy: Any
    data: PreparedData
    run_dir: Any
    verdict: str | None  # "fresh" / "resume" on the chief, None elsewhere
    chief: bool
    task: str


def prepare_run(config: TrainConfig, strategy=None) -> PreparedRun:
    """Validates the configuration, loads and checks the data, checks the run directory.

    Writes nothing: every `ValueError` (or `OSError` of a missing file) it
    raises leaves the file system as it was. `tools/train.py` turns them into
    exit code 2.

    Args:
        config: the run's configuration.
        strategy: a `tf.distribute.Strategy`, created from `config.strategy`
            when None.

    Returns:
        A `PreparedRun` for `train`.

    Example:

    >>> prepared = prepare_run(TrainConfig("fashion_mnist", "runs/demo"))  # doctest: +SKIP
    """
    config.validate()
    config = config.resolved()
    if strategy is None:
        strategy = kmc_strategy.get_strategy(config.strategy)
    stages.check_replicas(config, strategy.num_replicas_in_sync)
    data = prepare_data(config)
    chief = kmc_strategy.is_chief()
    run_dir = run_directory(config.model_dir)
    verdict = None
    if chief:
        verdict = run_dir.check(
            config.flat(),
            overwrite=config.overwrite,
            ignore=RESUME_NEUTRAL,
            extra_files=entry_inside(run_dir.path, config.export_dir),
        )
    return PreparedRun(config, strategy, data, run_dir, verdict, chief, kmc_strategy.task_id())


def train(prepared: PreparedRun) -> dict:
    """Claims the run directory (the run's first write), trains, and records the results.

    Args:
        prepared: from `prepare_run`.

    Returns:
        The results dictionary (the content of `results.json`).
    """
    config, run_dir, chief, task = prepared.config, prepared.run_dir, prepared.chief, prepared.task
    if chief:
        run_dir.start(config.flat(), fresh=prepared.verdict == "fresh")
        if prepared.verdict == "resume":
            logging.info("Resuming the interrupted run in %s.", config.model_dir)
    keras.utils.set_random_seed(config.seed)
    previous_policy = keras.config.dtype_policy()
    if config.mixed_precision:
        keras.config.set_dtype_policy("mixed_float16")
    output = config.model_dir if chief else tempfile.mkdtemp(prefix=f"kmc-{task}-")
    dirs = stages.Dirs(output, run_dir.backup_dir(task), chief)
    patch = (
        keras_workarounds.multi_worker_reduction()
        if config.strategy == "multi_worker"
        else contextlib.nullcontext()
    )
    try:
        with patch:
            results = _train(config, prepared.strategy, dirs, prepared.data)
    finally:
        keras.config.set_dtype_policy(previous_policy)
        if not chief:
            shutil.rmtree(output, ignore_errors=True)
    if chief:
        plot_curves(results["history"], os.path.join(config.model_dir, "curves.png"))
        run_dir.finish(results, task=None if config.strategy != "multi_worker" else task)
    else:
        run_dir.finish(None, task=task)
    return results


def run(config: TrainConfig, strategy=None) -> dict:
    """Trains, fine-tunes and evaluates as `config` says; returns the results.

    `prepare_run` then `train`. Order: validate the configuration, load the
    data and run every check that needs it, check the run directory, then
    write (run.json first) and train. A `ValueError` from any check leaves
    the file system as it was. The chief writes `run.json`, the logs,
    `model.keras` (the kept weights), `curves.png`, (with `export_dir`) a
    SavedModel, and `results.json`; other workers of a multi-worker run
    write to a temporary directory they delete. `BackupAndRestore` state
    lives in `<model_dir>/backup/<task>/`: running the same config again
    after a kill resumes from the last finished epoch; under other settings
    it is refused unless `overwrite`.

    Args:
        config: the run's configuration.
        strategy: a `tf.distribute.Strategy`; created from `config.strategy`
            when None (create it first thing in a program for multi_worker).

    Returns:
        The results dictionary (the content of `results.json`).

    Raises:
        ValueError: a setting, the data or the run directory cannot serve
            the run (the message names which); nothing was written.

    Example:

    >>> results = run(TrainConfig("fashion_mnist", "runs/demo", epochs=1))  # doctest: +SKIP
    >>> results["test_accuracy"]  # doctest: +SKIP
    """
    return train(prepare_run(config, strategy))


def plot_curves(history: list[dict], path: str) -> str | None:
    """`curves.png` of a run through `kmc.visualization` (helper "ui"); None without matplotlib.

    Example:

    >>> plot_curves([], "/tmp/curves.png")  # doctest: +SKIP
    """
    try:
        from keras_metacleaner.visualization import plot_training_curves
    except ImportError as e:
        logging.info("No curves.png (%s): pip install keras-metacleaner[plot]", e)
        return None
    try:
        return plot_training_curves(history, path)
    except ImportError as e:
        logging.info("No curves.png (%s): pip install keras-metacleaner[plot]", e)
        return None


def _median(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else None


def _alpha_auroc(model, prepared: PreparedData, config: TrainConfig) -> tuple[float | None, int]:
    if prepared.clean is None or config.alpha_auroc_examples <= 0:
        return None, 0
    shape = prepared.info.image_shape
    image_bytes = int(np.prod([d or 224 for d in shape])) * 4
    budget = max(
        config.subset_size * 2, min(config.alpha_auroc_examples, 512 * 2**20 // image_bytes)
    )
    count = min(budget, len(prepared.labels))
    train_images = pipelines.test_images(config, prepared.train.dataset).take(count)
    images = np.stack([x.numpy() for x, _ in train_images])
    labels = prepared.labels[:count]
    is_correct = labels == prepared.clean[:count]
    if is_correct.all() or not is_correct.any():
        return None, count
    scores = analysis.alpha_scores(model, images, labels, seed=config.seed)
    value = float(analysis.auroc(scores, is_correct))
    return (value if np.isfinite(value) else None), count


def _probe_batch(groups: tf.data.Dataset, max_subsets: int = 16):
    for x, y in groups.take(1):
        return x.numpy()[:max_subsets], y.numpy()[:max_subsets]
    raise ValueError(
        "The grouped training data is empty: too few examples per class for one subset."
    )


def _alpha_summary(model, alpha_cb, history) -> dict:
    alpha = alpha_cb.last_alpha if alpha_cb.last_alpha is not None else alpha_cb._alpha()
    floor = float(model.cleaner.alpha_min)
    last = history[-1] if history else {}
    return {
        "train_mean": last.get("alpha_mean"),
        "train_std": last.get("alpha_std"),
        "train_floor_share": last.get("alpha_floor"),
        "probe_mean": float(alpha.mean()),
        "probe_std": float(alpha.std()),
        "probe_floor_share": float(np.mean(alpha <= floor + 1e-3)),
        "probe_histogram": np.histogram(alpha, bins=10)[0].tolist(),
        "floor": floor,
    }


def _evaluate(model, prepared: PreparedData, config: TrainConfig) -> dict:
    # Eager forward passes over the whole, unsharded test set: the same exact
    # number on every worker of any strategy (Keras' distributed evaluate
    # shards the data across workers).
    inference = inference_model(model)
    return evaluation.evaluate_classifier(
        lambda images: keras.ops.convert_to_numpy(inference(images, training=False)),
        pipelines.test_images(config, prepared.test),
        prepared.info.num_classes,
        batch_size=config.batch_size,
    )


def _train(
    config: TrainConfig, strategy: tf.distribute.Strategy, dirs: stages.Dirs, prepared
) -> dict:
    started = time.time()
    info = prepared.info
    method = config.method_spec
    image_shape = tuple(info.image_shape)
    train = prepared.train
    steps = len(train) // config.batch_size
    logging.info(
        "Data %s: %d classes, %d train / %d test examples, images %s, realised noise rate %s; "
        "validation: %s.",
        info.name,
        info.num_classes,
        len(train),
        info.test_size,
        image_shape,
        "unknown"
        if prepared.realised_noise_rate is None
        else f"{prepared.realised_noise_rate:.4f}",
        "none"
        if prepared.validation is None
        else f"{prepared.validation_kind} ({len(prepared.validation)} examples"
        + (
            ", held out after the noise)"
            if prepared.validation_kind == "noisy"
            else ", the source's own split)"
        ),
    )
    multi_worker = config.strategy == "multi_worker"
    test_ds = pipelines.distribute_options(
        pipelines.test_pipeline(config, prepared.test), multi_worker
    )
    last_stage = "finetune" if config.finetune_epochs else "train"

    def selection_for(stage: str):
        if prepared.validation is None:
            return None
        return ValidationSelection(
            pipelines.test_images(config, prepared.validation.dataset),
            prepared.validation_kind,
            config.batch_size,
            state_dir=os.path.join(dirs.backup, "selection", stage),
            select=config.select_on == "noisy_val" and stage == last_stage,
        )

    history: list[dict] = []
    alpha_summary: dict[str, Any] = {}
    auroc, auroc_count = None, 0
    with strategy.scope():
        model = build_model(config, info.num_classes, image_shape, len(train))
        rate = schedule.make_schedule(
            config.learning_rate,
            steps,
            max(config.epochs, 1),
            config.schedule,
            config.lr_decay_epochs,
            config.lr_decay_factor,
            config.warmup_epochs,
        )
        optimizer = schedule.SGDL2(rate, momentum=config.momentum, l2=config.weight_decay)
        stages.compile_model(model, optimizer, config)

    selection = None
    if config.epochs:
        build_batch = None
        if pipelines.distributes_grouped(config, strategy):
            # Each worker plans the epoch and decodes only its own subsets.
            train_input = pipelines.distributed_grouped_pipeline(
                config, train, info.num_classes, strategy
            )
            train_ds, fit_ds = train_input.local, train_input.distributed
            build_batch = train_input.spec_batch()
        else:
            train_ds = pipelines.training_pipeline(config, train, info.num_classes, image_shape)
            fit_ds = train_ds.repeat()
        extra = list(method.callbacks(model, config))
        alpha_cb = None
        if method.grouped:
            probe_x, probe_y = _probe_batch(train_ds)
            alpha_cb = kmc_callbacks.AlphaHistogram(
                os.path.join(dirs.output, "logs", "alpha"), probe_x, probe_y
            )
            extra.append(alpha_cb)
        selection = selection_for("train")
        history += stages.fit_stage(
            model,
            fit_ds,
            "train",
            config.epochs,
            steps,
            config=config,
            dirs=dirs,
            test_ds=test_ds,
            strategy=strategy,
            selection=selection,
            extra=extra,
            build_batch=build_batch,
        )
        if alpha_cb is not None:
            alpha_summary = _alpha_summary(model, alpha_cb, history)
            auroc, auroc_count = _alpha_auroc(model, prepared, config)

    trained = model  # the model whose weights the last stage changes
    finetune_lr = None
    if config.finetune_epochs:
        finetune_train, finetune_size = prepared.finetune
        finetune_steps = finetune_size // config.batch_size
        finetune_lr = config.finetune_learning_rate or (
            schedule.rate_at(rate, config.epochs * steps - 1)
            if config.epochs
            else config.learning_rate
        )
        with strategy.scope():
            trained = inference_model(model)
            trained.compile(
                optimizer=schedule.SGDL2(
                    finetune_lr, momentum=config.momentum, l2=config.weight_decay
                ),
                loss="sparse_categorical_crossentropy",
                metrics=["accuracy"],
            )
        finetune_ds = pipelines.single_pipeline(
            config, finetune_train, finetune_size, image_shape, config.seed + 1
        ).repeat()
        selection = selection_for("finetune")
        history += stages.fit_stage(
            trained,
            finetune_ds,
            "finetune",
            config.finetune_epochs,
            finetune_steps,
            config=config,
            dirs=dirs,
            test_ds=test_ds,
            strategy=strategy,
            selection=selection,
        )

    final = _evaluate(model, prepared, config)
    kept = final
    selected_epoch = None
    if config.select_on == "noisy_val" and selection is not None:
        if selection.restore_best(trained):
            selected_epoch = selection.best_epoch
            kept = _evaluate(model, prepared, config)
            logging.info(
                "Kept the weights of %s epoch %d (%s %.4f); the last epoch's test accuracy was "
                "%.4f.",
                last_stage,
                selected_epoch + 1,
                selection.key,
                selection.best_score,
                final["top1"],
            )

    model_path = os.path.join(dirs.output, "model.keras")
    tmp_path = os.path.join(dirs.output, ".tmp-model.keras")
    model.save(tmp_path)
    os.replace(tmp_path, model_path)
    export_path = None
    if config.export_dir and dirs.chief:
        export_path = export.export_for_serving(
            model, config.export_dir, class_names=info.class_names
        )
    validation_key = LOG_KEYS.get(prepared.validation_kind) if prepared.validation else None
    accuracies = accuracy_summary(
        history, final["top1"], kept["top1"], config.select_on, selected_epoch, validation_key
    )
    skipped = getattr(info, "skipped_files", None)
    if skipped is None and getattr(info, "decode_errors", None) is not None:
        skipped = info.decode_errors.count
    realised = prepared.realised_noise_rate
    return {
        "method": config.method,
        "method_args": dict(method.args),
        "config": config.nested(),
        "flags": config.flat(),
        "dataset": {
            "name": info.name,
            "num_classes": info.num_classes,
            "train_size": len(train),
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
        "validation": {
            "kind": prepared.validation_kind,
            "size": 0 if prepared.validation is None else len(prepared.validation),
        },
        "selection": {
            "select_on": config.select_on,
            "stage": last_stage,
            "epoch": selected_epoch,
            "score": None if selected_epoch is None else selection.best_score,
        },
        "history": history,
        **accuracies,
        "test_top5_accuracy": kept["top5"],
        "test_per_class_accuracy": kept["per_class_accuracy"],
        "alpha": alpha_summary or None,
        "alpha_auroc": auroc,
        "alpha_auroc_examples": auroc_count,
        "seconds_per_epoch": _median(e.get("seconds") for e in history if e["stage"] == "train"),
        "seconds_per_finetune_epoch": _median(
            e.get("seconds") for e in history if e["stage"] == "finetune"
        ),
        "finetune_learning_rate": finetune_lr,
        "steps_per_epoch": steps,
        "strategy": {"name": config.strategy, "replicas": strategy.num_replicas_in_sync},
        "model_path": os.path.join(config.model_dir, "model.keras") if dirs.chief else None,
        "export_path": export_path,
        "skipped_files": skipped,
        "commit": git_commit(),
        "wall_seconds": time.time() - started,
    }
