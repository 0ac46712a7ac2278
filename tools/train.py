#!/usr/bin/env python
"""Trains a classifier on noisy labels with MetaCleaner (or a baseline) and records the run.

    python tools/train.py --flagfile=tools/configs/fashion_mnist.flags
    python tools/train.py --flagfile=tools/configs/fashion_mnist.flags --method=baseline \\
        --model_dir=runs/quickstart/baseline

Writes to --model_dir: BackupAndRestore state (run the same command again after a
crash to resume), TensorBoard logs, log.csv, model.keras and results.json. A
--model_dir that holds a finished run is refused unless --overwrite is given. See
docs/training.md for every flag, the paper's recipes and the results.json schema.
Bad flags exit with code 2 before anything is written.
"""

from __future__ import annotations

import json
import logging as std_logging
import os
import socket
import sys

from absl import app, flags, logging

# Before TensorFlow starts: quiet C++ logs unless the user asked for them.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_metacleaner import data  # noqa: E402
from keras_metacleaner.layers.weighting import DEFAULT_WEIGHTING, WEIGHTINGS  # noqa: E402
from keras_metacleaner.models import (  # noqa: E402
    DEFAULT_MEMBER_LOSS_WEIGHT,
    DEFAULT_SUBSET_LOSS_WEIGHTS,
    SUBSET_LOSS_WEIGHTS,
)
from keras_metacleaner.models.backbones import BACKBONES  # noqa: E402
from keras_metacleaner.training import recipe, strategy  # noqa: E402

FLAGS = flags.FLAGS
USAGE_ERROR = 2

flags.DEFINE_string(
    "dataset",
    None,
    "Dataset spec for keras_metacleaner.data.load: fashion_mnist, "
    "npz:PATH, folder:PATH, tfds:NAME?label=KEY, food101n:ROOT, clothing1m:ROOT.",
)
flags.DEFINE_string(
    "noise_type",
    "none",
    "Label noise injected into the TRAINING labels: none, "
    "symmetric, pairflip, or transition:PATH (a [C, C] row-stochastic matrix, "
    ".npy/.csv/.txt).",
)
flags.DEFINE_float("noise_rate", 0.0, "Fraction of training labels to corrupt, in [0, 1).")
flags.DEFINE_enum(
    "method",
    "metacleaner",
    list(recipe.METHODS),
    "baseline: plain classifier on single images; metacleaner: alpha-weighted "
    "hallucination of N same-label images (the paper); loss_reweight: alpha weights "
    "each image's loss (paper Table 3). Everything else stays equal.",
)
flags.DEFINE_enum(
    "weighting",
    DEFAULT_WEIGHTING,
    sorted(WEIGHTINGS),
    "Noisy Weighting function (paper Table 2; fc_fc_relu_sig is the paper's).",
)
flags.DEFINE_integer(
    "hidden_units", 384, "Hidden units of the weighting (384 Food-101N, 512 Clothing1M)."
)
flags.DEFINE_float(
    "member_loss_weight",
    DEFAULT_MEMBER_LOSS_WEIGHT,
    "metacleaner only: weight of an alpha-weighted per-image loss added to the hallucinated "
    "one (0 = the paper's method; the default measured best, see docs/results.md).",
)
flags.DEFINE_enum(
    "subset_loss_weights",
    DEFAULT_SUBSET_LOSS_WEIGHTS or "none",
    [w or "none" for w in SUBSET_LOSS_WEIGHTS],
    "metacleaner only: weight of each subset's hallucinated loss: none (the paper), or the "
    "largest / mean alpha of its members, so subsets that all look mislabelled count less.",
)
flags.DEFINE_integer("subset_size", 4, "N: same-label images per subset.")
flags.DEFINE_integer(
    "batch_size",
    128,
    "Images per step; K = batch_size / subset_size subsets "
    "for MetaCleaner. Must be divisible by --subset_size.",
)
flags.DEFINE_enum(
    "backbone",
    "small_cnn",
    sorted(BACKBONES),
    "Feature extractor: resnet50 (the "
    "paper), wide_resnet_28_10 (CIFAR-10, with --dropout), small_cnn (CPU).",
)
flags.DEFINE_string(
    "backbone_weights",
    "none",
    "none, imagenet (needs the Keras download or a "
    "cached file), or the path of a local ResNet50 no-top weights file.",
)
flags.DEFINE_float("dropout", 0.3, "Dropout inside WideResNet blocks.")
flags.DEFINE_integer("image_size", 0, "Resize images to this square size (0: keep the dataset's).")
flags.DEFINE_bool(
    "augment",
    False,
    "Random resized crop + horizontal flip for training, centre "
    "crop for test (needs --image_size).",
)
flags.DEFINE_integer("epochs", 10, "Epochs of the first (MetaCleaner or baseline) stage.")
flags.DEFINE_float("learning_rate", 0.01, "Initial SGD learning rate.")
flags.DEFINE_integer(
    "lr_decay_epochs",
    0,
    "Multiply the rate by --lr_decay_factor every this many epochs (0: constant).",
)
flags.DEFINE_float("lr_decay_factor", 0.1, "Step-decay multiplier.")
flags.DEFINE_float("momentum", 0.9, "SGD momentum.")
flags.DEFINE_float(
    "weight_decay",
    0.0,
    "Coupled L2 weight decay (Caffe/PyTorch semantics, added to the gradient before momentum).",
)
flags.DEFINE_integer("train_subset", 0, "Use only the first N training examples (0: all).")
flags.DEFINE_integer(
    "finetune_epochs",
    0,
    "Second stage: epochs of the plain classifier (cleaner unloaded) on single images.",
)
flags.DEFINE_string(
    "finetune_dataset",
    None,
    "Data of the second stage: empty for the same "
    "(noisy) training data, split:NAME for an extra split (e.g. "
    "split:clean_train), or another dataset spec.",
)
flags.DEFINE_integer("finetune_subset", 0, "Use only the first N fine-tuning examples (0: all).")
flags.DEFINE_float(
    "finetune_learning_rate",
    0.0,
    "Rate of the second stage (0: the rate the first stage ended with).",
)
flags.DEFINE_enum(
    "strategy",
    "default",
    list(strategy.STRATEGIES),
    "default (one device), "
    "mirrored (all local GPUs / logical CPUs), multi_worker (cluster from TF_CONFIG).",
)
flags.DEFINE_integer(
    "logical_cpus",
    int(os.environ.get("KMC_LOGICAL_CPUS", "0") or 0),
    "Split the CPU into this many logical devices before TensorFlow starts "
    "(for --strategy=mirrored without GPUs; env KMC_LOGICAL_CPUS).",
)
flags.DEFINE_bool("mixed_precision", False, "Train with the mixed_float16 policy.")
flags.DEFINE_integer("seed", 0, "Seeds Python, NumPy, TensorFlow, the label noise and shuffles.")
flags.DEFINE_string("model_dir", None, "Directory of backups, logs, model.keras, results.json.")
flags.DEFINE_bool(
    "overwrite",
    False,
    "Replace a finished run in --model_dir (one with a complete results.json): its results, "
    "model.keras and logs are removed and training starts afresh. Without it such a "
    "--model_dir is refused (exit 2). An interrupted run resumes either way.",
)
flags.DEFINE_string(
    "export_dir",
    None,
    "Export a SavedModel for TF Serving to <export_dir>/<version>/ (chief only).",
)
flags.DEFINE_string(
    "baseline_results", None, "results.json of a baseline run: print a comparison table at the end."
)
flags.DEFINE_integer(
    "alpha_auroc_examples",
    2000,
    "Training examples scored for the alpha AUROC (when clean labels are known).",
)
flags.DEFINE_enum(
    "verbose",
    "auto",
    ["auto", "0", "1", "2"],
    "Keras fit verbosity (1: progress bar, 2: one line per epoch).",
)

flags.mark_flags_as_required(["dataset", "model_dir"])

_PATH_SPECS = {
    "npz": os.path.isfile,
    "folder": os.path.isdir,
    "food101n": os.path.isdir,
    "clothing1m": os.path.isdir,
}
IMAGENET_WEIGHTS = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_URL = (
    f"https://storage.googleapis.com/tensorflow/keras-applications/resnet/{IMAGENET_WEIGHTS}"
)


class _QuietLibraries(std_logging.Filter):
    """Keeps INFO lines of this project; TensorFlow's own INFO chatter would drown them."""

    def filter(self, record: std_logging.LogRecord) -> bool:
        return record.levelno >= std_logging.WARNING or "keras_metacleaner" in record.pathname


class UsageError(ValueError):
    """A flag value that cannot work; exits with code 2 before any work."""


def _check_spec(flag: str, spec: str) -> None:
    try:
        kind, target, _ = data.parse_spec(spec)
    except ValueError as e:
        raise UsageError(f"--{flag}={spec}: {e}") from None
    exists = _PATH_SPECS.get(kind)
    if exists is not None and not exists(target):
        what = "file" if kind == "npz" else "directory"
        raise UsageError(f"--{flag}={spec}: the {what} {target!r} does not exist.")


def _imagenet_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("KMC_OFFLINE"):
        return False
    try:
        socket.create_connection(("storage.googleapis.com", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _check_backbone_weights(weights: str, backbone: str) -> None:
    if weights == "none":
        return
    if backbone != "resnet50":
        raise UsageError(
            f"--backbone_weights={weights}: only --backbone=resnet50 has pretrained weights "
            f"(got --backbone={backbone}); use --backbone_weights=none."
        )
    if weights == "imagenet":
        cache = os.path.join(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "models")
        if os.path.isfile(os.path.join(cache, IMAGENET_WEIGHTS)) or _imagenet_reachable():
            return
        raise UsageError(
            "--backbone_weights=imagenet: the ImageNet weights are not cached and "
            "storage.googleapis.com is unreachable. Download "
            f"{IMAGENET_URL} "
            f"on a machine with internet, then pass --backbone_weights=/path/to/{IMAGENET_WEIGHTS} "
            f"(or copy it to {cache}/)."
        )
    if not os.path.isfile(weights):
        raise UsageError(
            f"--backbone_weights={weights}: no such file; pass none, imagenet or the path of a "
            "ResNet50 (include_top=False) weights file."
        )


def _not_a_file(flag: str, path: str | None) -> None:
    if path and os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"--{flag}={path}: exists and is not a directory.")


def build_config() -> recipe.TrainConfig:
    """Validates the flags and turns them into a `TrainConfig` (writes nothing)."""
    _check_spec("dataset", FLAGS.dataset)
    spec = FLAGS.finetune_dataset
    if spec and not spec.startswith(recipe.SPLIT_PREFIX):
        _check_spec("finetune_dataset", spec)
    if FLAGS.noise_type.startswith(recipe.TRANSITION_PREFIX):
        path = FLAGS.noise_type[len(recipe.TRANSITION_PREFIX) :]
        try:
            recipe.load_transition(path)
        except (OSError, ValueError) as e:
            raise UsageError(f"--noise_type={FLAGS.noise_type}: {e}") from None
    _not_a_file("model_dir", FLAGS.model_dir)
    finished = recipe.finished_run(FLAGS.model_dir)
    if finished and not FLAGS.overwrite:
        raise UsageError(
            f"--model_dir={FLAGS.model_dir} already holds a finished run ({finished}); pass "
            "--overwrite to replace it, or choose another --model_dir."
        )
    _not_a_file("export_dir", FLAGS.export_dir)
    if FLAGS.baseline_results and not os.path.isfile(FLAGS.baseline_results):
        raise UsageError(f"--baseline_results={FLAGS.baseline_results}: no such file.")
    _check_backbone_weights(FLAGS.backbone_weights, FLAGS.backbone)
    if FLAGS.augment and not FLAGS.image_size:
        raise UsageError("--augment needs --image_size (the crop size).")
    if FLAGS.logical_cpus < 0:
        raise UsageError(f"--logical_cpus={FLAGS.logical_cpus} must be >= 0.")
    if FLAGS.strategy == "multi_worker":
        try:
            strategy.validate_tf_config(strategy.tf_config())
        except ValueError as e:
            raise UsageError(f"--strategy=multi_worker: {e}") from None
    config = recipe.TrainConfig(
        dataset=FLAGS.dataset,
        model_dir=FLAGS.model_dir,
        method=FLAGS.method,
        noise_type=FLAGS.noise_type,
        noise_rate=FLAGS.noise_rate,
        weighting=FLAGS.weighting,
        hidden_units=FLAGS.hidden_units,
        member_loss_weight=FLAGS.member_loss_weight,
        subset_loss_weights=None
        if FLAGS.subset_loss_weights == "none"
        else FLAGS.subset_loss_weights,
        subset_size=FLAGS.subset_size,
        batch_size=FLAGS.batch_size,
        backbone=FLAGS.backbone,
        backbone_weights=None if FLAGS.backbone_weights == "none" else FLAGS.backbone_weights,
        dropout=FLAGS.dropout,
        image_size=FLAGS.image_size or None,
        augment=FLAGS.augment,
        epochs=FLAGS.epochs,
        learning_rate=FLAGS.learning_rate,
        lr_decay_epochs=FLAGS.lr_decay_epochs,
        lr_decay_factor=FLAGS.lr_decay_factor,
        momentum=FLAGS.momentum,
        weight_decay=FLAGS.weight_decay,
        train_subset=FLAGS.train_subset,
        finetune_epochs=FLAGS.finetune_epochs,
        finetune_dataset=FLAGS.finetune_dataset or None,
        finetune_subset=FLAGS.finetune_subset,
        finetune_learning_rate=FLAGS.finetune_learning_rate,
        strategy=FLAGS.strategy,
        mixed_precision=FLAGS.mixed_precision,
        seed=FLAGS.seed,
        export_dir=FLAGS.export_dir,
        alpha_auroc_examples=FLAGS.alpha_auroc_examples,
        verbose="auto" if FLAGS.verbose == "auto" else int(FLAGS.verbose),
        overwrite=FLAGS.overwrite,
    )
    try:
        config.validate()
    except ValueError as e:
        raise UsageError("--" + str(e)) from None
    return config


def _fmt(value, percent: bool = True) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.2f}%" if percent else f"{value:.3f}"


def comparison_table(results: dict, baseline: dict | None) -> str:
    """A plain-text table of this run (and its baseline, with the difference)."""
    rows = [
        ("test accuracy (final)", "test_accuracy", True),
        ("test accuracy (best epoch)", "best_test_accuracy", True),
        ("realised noise rate", "realised_noise_rate", True),
        ("alpha AUROC (correct vs wrong)", "alpha_auroc", False),
        ("seconds / epoch", "seconds_per_epoch", False),
    ]
    header = ["", results["method"]]
    if baseline is not None:
        header = ["", baseline.get("method", "baseline"), results["method"], "difference"]
    lines = [header]
    for title, key, percent in rows:
        ours = results.get(key)
        if baseline is None:
            lines.append([title, _fmt(ours, percent)])
            continue
        theirs = baseline.get(key)
        diff = "-"
        if key.endswith("accuracy") and ours is not None and theirs is not None:
            diff = f"{100 * (ours - theirs):+.2f} pts"
        lines.append([title, _fmt(theirs, percent), _fmt(ours, percent), diff])
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    out = []
    for i, row in enumerate(lines):
        out.append(
            "  ".join(
                cell.ljust(w) if j == 0 else cell.rjust(w)
                for j, (cell, w) in enumerate(zip(row, widths))
            )
        )
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def parse_flags(argv: list[str]) -> list[str]:
    """absl flag parsing with exit code 2 (usage error) instead of 1."""
    try:
        return FLAGS(argv)
    except flags.Error as e:
        sys.stderr.write(f"train.py: error: {e}\nPass --helpfull to see every flag.\n")
        sys.exit(USAGE_ERROR)


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        sys.stderr.write(f"train.py: error: unexpected arguments {argv[1:]}\n")
        return USAGE_ERROR
    try:
        config = build_config()
        baseline = None
        if FLAGS.baseline_results:
            with open(FLAGS.baseline_results) as f:
                try:
                    baseline = json.load(f)
                except json.JSONDecodeError as e:
                    raise UsageError(
                        f"--baseline_results={FLAGS.baseline_results}: not JSON ({e})."
                    ) from None
    except UsageError as e:
        sys.stderr.write(f"train.py: error: {e}\n")
        return USAGE_ERROR

    logging.set_verbosity(logging.INFO)
    logging.get_absl_handler().addFilter(_QuietLibraries())
    strategy.split_cpu(FLAGS.logical_cpus)
    # Created before any other TF work: multi-worker collectives must come first.
    dist = strategy.get_strategy(config.strategy)
    results = recipe.run(config, dist)
    if not strategy.is_chief():
        return 0
    print()
    print(
        f"{config.method} on {results['dataset']['name']}: results in "
        f"{os.path.join(config.model_dir, 'results.json')}"
    )
    print(comparison_table(results, baseline))
    if results.get("export_path"):
        print(f"SavedModel for TF Serving: {results['export_path']}")
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=parse_flags)
