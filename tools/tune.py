#!/usr/bin/env python
"""Searches the subset size N (and method, learning rate) with KerasTuner; trials are training runs.

    python tools/tune.py --flagfile=tools/configs/fashion_mnist.flags --validation_split=0.1 \\
        --directory=runs/search --max_trials=4 --epochs=3
    python tools/train.py --flagfile=tools/configs/fashion_mnist.flags \\
        --flagfile=runs/search/best.flags --model_dir=runs/best

Takes every flag of tools/train.py (the recipe: dataset, noise, backbone, schedule,
... from the one definition in tools/train_flags.py) plus the search: --tuner,
--max_trials, --directory, --subset_sizes, --methods, --learning_rates. Each trial
trains with the recipe and the trial's method, N, batch (K·N images, about
--batch_size, K divisible by the replicas) and learning rate, in
<directory>/search/trial_<id>/run/; the first trial is always plain training
(--method=baseline). The objective is the accuracy on the validation split held
out of the NOISY training labels (--validation_split; 0.1 when neither the
command line nor the recipe sets it), or on the clean validation split a source
ships (clothing1m's val); the tool says which. Run the
same command again to resume an interrupted search. At the end it prints the
trial table and writes best_hyperparameters.json and best.flags into
--directory (and with --export_dir exports the best trial's model). --model_dir
of a recipe is ignored. Bad flags exit with code 2 before anything is written.
"""

from __future__ import annotations

import logging as std_logging
import os
import sys

from absl import app, flags, logging

# Before TensorFlow starts: quiet C++ logs unless the user asked for them.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import train_flags  # noqa: E402
from cli import UsageError, usage_error  # noqa: E402

FLAGS = flags.FLAGS
TUNERS = ("random", "bayesian", "hyperband")  # keras_metacleaner.tuning.TUNERS
# Sources that ship their own (clean) validation split; the others need --validation_split.
SOURCES_WITH_VALIDATION = ("clothing1m",)
# Held out when neither the command line nor the recipe sets --validation_split.
DEFAULT_VALIDATION_SPLIT = 0.1

train_flags.define_flags()
if "logical_cpus" not in FLAGS:  # tools/train.py defines it too (one process in tests)
    flags.DEFINE_integer(
        "logical_cpus",
        int(os.environ.get("KMC_LOGICAL_CPUS", "0") or 0),
        "Split the CPU into this many logical devices before TensorFlow starts "
        "(for --strategy=mirrored without GPUs; env KMC_LOGICAL_CPUS).",
    )
flags.DEFINE_enum("tuner", "random", list(TUNERS), "KerasTuner search algorithm.")
flags.DEFINE_integer(
    "max_trials", 6, "Trials in all, the baseline trial included (hyperband: an upper bound)."
)
flags.DEFINE_string(
    "directory",
    None,
    "Directory of the search: trials under <directory>/search/, best_hyperparameters.json and "
    "best.flags at its top. The same --directory resumes.",
)
flags.DEFINE_list("subset_sizes", ["2", "3", "4", "6", "8"], "Values of N to search.")
flags.DEFINE_list(
    "methods",
    [],
    "Grouped methods to search (e.g. metacleaner,paper); empty: --method of the recipe, or "
    "metacleaner when that is baseline. The baseline is always a trial.",
)
flags.DEFINE_list(
    "learning_rates", [], "Learning rates to search; empty: --learning_rate of the recipe."
)


class _QuietLibraries(std_logging.Filter):
    """Keeps INFO lines of this project; TensorFlow's own INFO chatter would drown them."""

    def filter(self, record: std_logging.LogRecord) -> bool:
        return record.levelno >= std_logging.WARNING or "keras_metacleaner" in record.pathname


def _numbers(flag: str, values: list[str], kind, low) -> list:
    out = []
    for value in values:
        try:
            number = kind(value)
        except ValueError:
            number = None
        if number is None or number < low:
            raise UsageError(
                f"--{flag}={','.join(values)}: {value!r} is not a {kind.__name__} >= {low}."
            )
        out.append(number)
    if not out:
        raise UsageError(f"--{flag} is empty.")
    return out


def build_search():
    """Validates the flags (no TensorFlow, nothing written); returns (config, search settings)."""
    if FLAGS.directory and os.path.exists(FLAGS.directory) and not os.path.isdir(FLAGS.directory):
        raise UsageError(f"--directory={FLAGS.directory}: exists and is not a directory.")
    # Trials live under --directory: a recipe's --model_dir (maybe a finished run) is not used.
    FLAGS.model_dir = os.path.join(FLAGS.directory, "unused")
    config = train_flags.config_from_flags(FLAGS)
    from keras_metacleaner.training import methods as methods_lib

    grouped = [name for name, spec in methods_lib.METHODS.items() if spec.grouped]
    methods = FLAGS.methods or [config.method if config.method in grouped else "metacleaner"]
    unknown = [m for m in methods if m not in grouped and m != "baseline"]
    if unknown:
        raise UsageError(
            f"--methods={','.join(methods)}: {unknown} train without subsets (or do not exist); "
            f"expected methods from {grouped} (the baseline is always a trial)."
        )
    search = {
        "methods": methods,
        "subset_sizes": _numbers("subset_sizes", FLAGS.subset_sizes, int, 1),
        "learning_rates": _numbers(
            "learning_rates", FLAGS.learning_rates or [str(config.learning_rate)], float, 1e-12
        ),
    }
    if FLAGS.max_trials < 1:
        raise UsageError(f"--max_trials={FLAGS.max_trials} must be >= 1.")
    if FLAGS.logical_cpus < 0:
        raise UsageError(f"--logical_cpus={FLAGS.logical_cpus} must be >= 0.")
    source = config.dataset.partition(":")[0]
    if not config.validation_split and source not in SOURCES_WITH_VALIDATION:
        if FLAGS["validation_split"].present:
            raise UsageError(
                f"--validation_split=0: the search scores trials on a validation split held out "
                f"of the noisy training labels; pass e.g. --validation_split=0.1 ({source} ships "
                "no validation split of its own)."
            )
        config.validation_split = DEFAULT_VALIDATION_SPLIT
    if config.export_dir and os.path.exists(config.export_dir):
        if not os.path.isdir(config.export_dir):
            raise UsageError(f"--export_dir={config.export_dir}: exists and is not a directory.")
    return config, search


def objective_line(config) -> str:
    if config.validation_split:
        return (
            "Objective: accuracy on the NOISY validation split "
            f"(--validation_split={config.validation_split:g} of the training examples, held out "
            "after the label noise: what a user without clean labels has)."
        )
    return "Objective: accuracy on the CLEAN validation split the source ships."


parse_flags = train_flags.flags_parser("tune.py", required=("dataset", "directory"))


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        return usage_error("tune.py", f"unexpected arguments {argv[1:]}")
    try:
        config, search = build_search()
    except UsageError as e:
        return usage_error("tune.py", e)

    # TensorFlow starts here, once the flags are known to be good.
    from keras_metacleaner import tuning
    from keras_metacleaner.training import strategy

    strategy.split_cpu(FLAGS.logical_cpus)
    dist = strategy.get_strategy(config.strategy)
    try:
        space = tuning.SearchSpace(
            search["methods"],
            search["subset_sizes"],
            search["learning_rates"],
            images_per_step=config.batch_size,
            replicas=dist.num_replicas_in_sync,
        )
    except ValueError as e:
        return usage_error("tune.py", f"--subset_sizes / --batch_size: {e}")

    logging.set_verbosity(logging.INFO)
    logging.get_absl_handler().addFilter(_QuietLibraries())
    print(objective_line(config))
    tuner = tuning.TrainingTuner(
        config,
        space,
        FLAGS.tuner,
        max_trials=FLAGS.max_trials,
        directory=FLAGS.directory,
        project_name="search",
        strategy=dist,
        overwrite=config.overwrite,
    )
    tuner.search()
    if not strategy.is_chief():
        return 0
    rows = tuning.trial_table(tuner)
    print()
    print(tuning.format_trial_table(rows))
    if not any(row[tuning.OBJECTIVE] is not None for row in rows):
        sys.stderr.write("tune.py: error: no trial finished; see the log above.\n")
        return 1
    paths = tuning.write_best(tuner, FLAGS.directory)
    best = tuning.read_best(FLAGS.directory)
    kind = (best["objective"].get("validation") or {}).get("kind")
    print()
    print(
        f"Best: trial {best['trial_id']} ({best['settings']}), {kind} validation accuracy "
        f"{best['objective']['value']:.4f}."
    )
    print(f"Wrote {paths['json']} and {paths['flags']}")
    if config.export_dir:
        print(f"SavedModel for TF Serving: {tuning.export_best(tuner, config.export_dir)}")
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=parse_flags)
