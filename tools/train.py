#!/usr/bin/env python
"""Trains a classifier on noisy labels with a named method and records the run.

    python tools/train.py --flagfile=tools/configs/fashion_mnist.flags
    python tools/train.py --flagfile=tools/configs/fashion_mnist.flags --method=baseline \\
        --model_dir=runs/quickstart/baseline

Flags in (`tools/train_flags.py`, generated from `TrainConfig`), one library
call (`keras_metacleaner.training.recipe`), files out. Writes to --model_dir:
run.json, BackupAndRestore state (run the same command again after a kill to
resume), TensorBoard logs, log.csv, model.keras, curves.png and results.json.
See docs/training.md for every flag, the methods and the results.json schema.
Bad flags, data or model directories exit with code 2 and one line, before
anything is written.
"""

from __future__ import annotations

import json
import logging as std_logging
import os
import sys

from absl import app, flags, logging

# keras_metacleaner loads its subpackages on first use in this program, so the flags are
# validated before TensorFlow starts (see keras_metacleaner/__init__.py).
KMC_DEFER_IMPORTS = True

# Before TensorFlow starts: quiet C++ logs unless the user asked for them.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import train_flags  # noqa: E402
from cli import UsageError, usage_error  # noqa: E402

from keras_metacleaner.training import run_directory  # noqa: E402

FLAGS = flags.FLAGS

train_flags.define_flags()
flags.DEFINE_integer(
    "logical_cpus",
    int(os.environ.get("KMC_LOGICAL_CPUS", "0") or 0),
    "Split the CPU into this many logical devices before TensorFlow starts "
    "(for --strategy=mirrored without GPUs; env KMC_LOGICAL_CPUS).",
)
flags.DEFINE_string(
    "baseline_results", None, "results.json of a baseline run: print a comparison table at the end."
)


class _QuietLibraries(std_logging.Filter):
    """Keeps INFO lines of this project; TensorFlow's own INFO chatter would drown them."""

    def filter(self, record: std_logging.LogRecord) -> bool:
        return record.levelno >= std_logging.WARNING or "keras_metacleaner" in record.pathname


def build_config():
    """Validates the flags and turns them into a `TrainConfig` (writes nothing, no TensorFlow)."""
    config = train_flags.config_from_flags(FLAGS)
    if config.strategy != "multi_worker":
        # The model directory too, before TensorFlow starts (the library checks it again
        # once the data is loaded; under multi_worker only the chief may, so it waits).
        try:
            run_directory.RunDirectory(config.model_dir).check(
                config.resolved().flat(),
                overwrite=config.overwrite,
                extra_files=run_directory.entry_inside(config.model_dir, config.export_dir),
            )
        except ValueError as e:
            raise UsageError(f"--{e}") from None
    if FLAGS.baseline_results and not os.path.isfile(FLAGS.baseline_results):
        raise UsageError(f"--baseline_results={FLAGS.baseline_results}: no such file.")
    if FLAGS.logical_cpus < 0:
        raise UsageError(f"--logical_cpus={FLAGS.logical_cpus} must be >= 0.")
    return config


def _fmt(value, percent: bool = True) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.2f}%" if percent else f"{value:.3f}"


def comparison_table(results: dict, baseline: dict | None) -> str:
    """A plain-text table of this run (and its baseline, with the difference)."""
    rows = [
        ("test accuracy (kept weights)", "test_accuracy", True),
        ("test accuracy (final epoch)", "final_test_accuracy", True),
        ("test accuracy (picked on validation)", "picked_test_accuracy", True),
        ("test accuracy (oracle best epoch)", "oracle_best_test_accuracy", True),
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


parse_flags = train_flags.flags_parser("train.py", required=("dataset", "model_dir"))


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        return usage_error("train.py", f"unexpected arguments {argv[1:]}")
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
        return usage_error("train.py", e)

    # TensorFlow starts here, once the flags are known to be good.
    from keras_metacleaner.training import recipe, strategy

    logging.set_verbosity(logging.INFO)
    logging.get_absl_handler().addFilter(_QuietLibraries())
    strategy.split_cpu(FLAGS.logical_cpus)
    # Created before any other TF work: multi-worker collectives must come first.
    dist = strategy.get_strategy(config.strategy)
    try:
        prepared = recipe.prepare_run(config, dist)
    except (ValueError, OSError) as e:
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        flag = message.split("=", 1)[0]
        prefix = "--" if flag.isidentifier() and flag in FLAGS else ""
        return usage_error("train.py", f"{prefix}{message}")
    from keras_metacleaner.training.guards import NonFiniteLossError

    try:
        results = recipe.train(prepared)
    except NonFiniteLossError as e:
        # The run had started (exit 1, not 2); no epoch with non-finite weights was kept.
        sys.stderr.write(f"train.py: error: {str(e).splitlines()[0]}\n")
        return 1
    if not strategy.is_chief():
        return 0
    config = prepared.config
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
