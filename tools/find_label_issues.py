#!/usr/bin/env python
"""Lists the training labels most likely to be wrong, for a person to check and fix.

    python tools/find_label_issues.py --model=runs/quickstart/metacleaner/model.keras --sheet=64

Scores every training example with `keras_metacleaner.analysis.score_labels` (the cleaner's
weight α, the classifier's probability of the given label, its predicted class, and one
suspicion) and writes, by default next to the model:

    label_issues.csv   index, [path,] given_label, given_class, predicted_label,
                       predicted_class, alpha_score, label_probability, suspicion
                       (most suspicious first)
    label_issues.json  how many were flagged (suspicion > --threshold), and, when the true
                       labels are known, AUROC, average precision, precision at k (k = the
                       true number of wrong labels) and precision / recall of the flagged set
    label_issues.png   with --sheet=K: the K most suspicious images, given and predicted class

The dataset, noise, seed and subset default to the training run's (its results.json next to
the model), so the labels checked are the labels it trained on; flags override them. True
labels are known for injected noise and for sources that ship them (`y_train_clean` in an npz;
a verified subset such as Food-101N's is measured where verified: -1 unknown, -2 known wrong).
Works with a MetaCleanerModel or a plain classifier (no α; suspicion from the classifier).
Bad flags exit 2 with one line naming the flag, before anything is written.
"""

from __future__ import annotations

import json
import os
import sys
import zipfile

from absl import app, flags

# Run as a script or through runpy: its sibling modules are importable either way.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli import flags_parser, usage_error  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Flags are checked before TensorFlow loads: keras_metacleaner imports its subpackages on use.
KMC_DEFER_IMPORTS = True

FLAGS = flags.FLAGS
BASENAME = "label_issues"
# Settings read from the training run's results.json unless given on the command line.
# Sources whose examples are files: the CSV gets a `path` column.
FILE_SOURCES = ("folder", "food101n", "clothing1m")
RUN_SETTINGS = ("dataset", "noise_type", "noise_rate", "seed", "train_subset", "image_size")

flags.DEFINE_string(
    "model", None, "A trained model: <model_dir>/model.keras (MetaCleaner or plain)."
)
flags.DEFINE_string(
    "dataset", None, "Dataset spec of keras_metacleaner.data.load; default: the run's."
)
flags.DEFINE_string(
    "noise_type",
    "none",
    "Noise injected into the training labels as in training: none, symmetric, pairflip, "
    "transition:PATH, confusion[:PATH]; default: the run's.",
)
flags.DEFINE_float(
    "noise_rate", 0.0, "Fraction of labels corrupted, in [0, 1); default: the run's."
)
flags.DEFINE_integer("seed", 0, "Seed of the noise and of α's subsets; default: the run's.")
flags.DEFINE_integer(
    "train_subset",
    0,
    "Keep the first this many training examples, as train.py; default: the run's.",
)
flags.DEFINE_integer("image_size", None, "Resize images as in training; default: the run's.")
flags.DEFINE_integer("max_examples", 0, "Score only the first this many examples (0: all).")
flags.DEFINE_integer("draws", 4, "Random subset partitions α is averaged over.")
flags.DEFINE_integer("batch_size", 256, "Images per forward pass.")
flags.DEFINE_string(
    "suspicion", None, "Rule of keras_metacleaner.analysis.SUSPICIONS (default: the library's)."
)
flags.DEFINE_float(
    "threshold", 0.5, "Flag examples whose suspicion is above this (0.5: more likely wrong)."
)
flags.DEFINE_string(
    "output",
    None,
    "Directory for label_issues.csv/.json/.png, or a .csv path (the .json and .png go next to "
    "it). Default: the model's directory.",
)
flags.DEFINE_integer("sheet", 0, "Write a PNG contact sheet of the K most suspicious images.")
flags.DEFINE_integer("top", 20, "How many of the most suspicious examples to print.")


def _fail(message: str) -> None:
    sys.exit(usage_error("find_label_issues.py", message))


parse_flags = flags_parser("find_label_issues.py")


def _output_paths(output: str) -> dict[str, str]:
    if output.endswith(".csv"):
        stem = output[: -len(".csv")]
    else:
        stem = os.path.join(output, BASENAME)
    return {"csv": stem + ".csv", "json": stem + ".json", "png": stem + ".png"}


def _check_flags() -> dict[str, str]:
    """Every check that needs no TensorFlow; returns the output paths."""
    if not FLAGS.model or not os.path.isfile(FLAGS.model):
        _fail(f"--model={FLAGS.model!r} is not a file; pass a trained <model_dir>/model.keras.")
    if not zipfile.is_zipfile(FLAGS.model):
        _fail(f"--model={FLAGS.model!r} cannot be loaded: not a .keras file (a zip archive).")
    if FLAGS["noise_rate"].present and not 0.0 <= FLAGS.noise_rate < 1.0:
        _fail(f"--noise_rate={FLAGS.noise_rate} must be in [0, 1).")
    for name, low in (
        ("draws", 1),
        ("batch_size", 1),
        ("max_examples", 0),
        ("train_subset", 0),
        ("sheet", 0),
        ("top", 0),
    ):
        if FLAGS[name].value < low:
            _fail(f"--{name}={FLAGS[name].value} must be >= {low}.")
    if FLAGS.image_size is not None and FLAGS.image_size < 8:
        _fail(f"--image_size={FLAGS.image_size} must be >= 8.")
    if not 0.0 <= FLAGS.threshold <= 1.0:
        _fail(f"--threshold={FLAGS.threshold} must be in [0, 1].")
    output = FLAGS.output or os.path.dirname(os.path.abspath(FLAGS.model))
    paths = _output_paths(output)
    directory = os.path.dirname(os.path.abspath(paths["csv"]))
    parent = directory
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        _fail(f"--output={output!r}: {parent!r} is not a writable directory.")
    return paths


def _run_settings(model_path: str) -> dict:
    """The training run's settings (results.json next to the model), overridden by flags."""
    settings = {name: FLAGS[name].value for name in RUN_SETTINGS}
    results_path = os.path.join(os.path.dirname(os.path.abspath(model_path)), "results.json")
    recorded = {}
    if os.path.isfile(results_path):
        try:
            with open(results_path) as f:
                recorded = json.load(f).get("flags", {}) or {}
        except (OSError, ValueError, AttributeError):
            recorded = {}
    for name in RUN_SETTINGS:
        if not FLAGS[name].present and recorded.get(name) is not None:
            settings[name] = recorded[name]
    if not settings["dataset"]:
        _fail("--dataset is required (the model has no results.json naming its dataset).")
    if not 0.0 <= float(settings["noise_rate"]) < 1.0:
        _fail(f"--noise_rate={settings['noise_rate']} must be in [0, 1).")
    return settings


def _format(value) -> str:
    return "nan" if value != value else f"{value:.4f}"


def main(argv):
    if len(argv) > 1:
        _fail(f"unexpected argument {argv[1]!r}; every setting is a --flag.")
    paths = _check_flags()
    settings = _run_settings(FLAGS.model)

    import keras
    import numpy as np

    import keras_metacleaner as kmc
    import keras_metacleaner.models  # noqa: F401  (registers the saved model classes)
    from keras_metacleaner.training import TrainConfig, prepare_data
    from keras_metacleaner.training.results import write_json_atomic

    rule = FLAGS.suspicion or kmc.analysis.DEFAULT_SUSPICION
    if rule not in kmc.analysis.SUSPICIONS:
        _fail(f"--suspicion={rule!r}: expected one of {sorted(kmc.analysis.SUSPICIONS)}.")
    config = TrainConfig(
        dataset=settings["dataset"],
        model_dir=os.path.dirname(os.path.abspath(FLAGS.model)),
        noise_type=settings["noise_type"],
        noise_rate=float(settings["noise_rate"]),
        seed=int(settings["seed"]),
        train_subset=int(settings["train_subset"]),
        image_size=settings["image_size"],
        # Only the data is prepared (nothing trains): no batch-size limit on small sets.
        method="baseline",
        batch_size=1,
    )
    try:
        config.validate()
        # No validation split: every training example, in the order of the source.
        prepared = prepare_data(config.resolved())
        files = None
        if kmc.data.parse_spec(settings["dataset"])[0] in FILE_SOURCES:
            files = kmc.data.load(settings["dataset"], image_size=config.image_size).paths
    except (ValueError, FileNotFoundError) as error:
        _fail(f"--dataset={settings['dataset']!r} / --noise_type: {error}")
    try:
        model = keras.models.load_model(FLAGS.model, compile=False)
    except Exception as error:  # noqa: BLE001  (Keras raises many kinds for a bad file)
        _fail(f"--model={FLAGS.model!r} cannot be loaded: {str(error).splitlines()[0]}")
    classes = getattr(model, "num_classes", None) or int(model.output_shape[-1])
    if classes != prepared.info.num_classes:
        _fail(
            f"--model={FLAGS.model!r} predicts {classes} classes but --dataset="
            f"{settings['dataset']!r} has {prepared.info.num_classes}."
        )

    train, given, true = prepared.train.dataset, prepared.labels, prepared.clean
    if FLAGS.max_examples and FLAGS.max_examples < len(given):
        train = kmc.data.take(train, FLAGS.max_examples)
        given = given[: FLAGS.max_examples]
        true = None if true is None else true[: FLAGS.max_examples]
    scores = kmc.analysis.score_labels(
        model,
        train,
        given,
        batch_size=FLAGS.batch_size,
        chunk_size=max(8192, FLAGS.batch_size),
        draws=FLAGS.draws,
        seed=int(settings["seed"]),
        suspicion=rule,
    )
    names = list(prepared.info.class_names)
    files = None if files is None else [str(p) for p in list(files)[: len(given)]]
    kmc.analysis.write_label_issues_csv(paths["csv"], scores, names, paths=files)

    flagged = scores.flagged(FLAGS.threshold)
    summary = {
        "model": os.path.abspath(FLAGS.model),
        "settings": settings,
        "suspicion_rule": rule,
        "threshold": FLAGS.threshold,
        "examples": len(scores),
        "flagged": int(flagged.sum()),
        "csv": os.path.abspath(paths["csv"]),
        "metrics": None,
    }
    if true is not None:
        # Partly known true labels (Food-101N's verified subset): measured where known.
        is_wrong, known = kmc.analysis.wrong_labels(given, true)
        if known.any():
            summary["metrics"] = kmc.analysis.label_issue_metrics(
                np.where(known, scores.suspicion, np.nan), is_wrong, flagged
            )

    order = scores.ranking()
    if FLAGS.sheet:
        top = order[: FLAGS.sheet]
        kmc.analysis.contact_sheet(
            kmc.analysis.gather_images(train, top),
            scores.given_label[top],
            scores.predicted_label[top],
            names,
            paths["png"],
            captions=[f"#{i}  {scores.suspicion[i]:.2f}" for i in top],
        )
        summary["sheet"] = os.path.abspath(paths["png"])
    write_json_atomic(paths["json"], summary)

    print(
        f"Scored {len(scores)} labels; {int(flagged.sum())} flagged "
        f"(suspicion > {FLAGS.threshold}). Most suspicious first:"
    )
    for i in order[: FLAGS.top]:
        extra = "" if true is None or true[i] < 0 else f"  true: {names[true[i]]}"
        print(
            f"  #{i:<7d} given: {names[given[i]]:<16s} predicted: "
            f"{names[scores.predicted_label[i]]:<16s} suspicion {scores.suspicion[i]:.3f}{extra}"
        )
    metrics = summary["metrics"]
    if metrics:
        print(
            f"Against the true labels ({metrics['wrong_labels']} wrong of {metrics['examples']}): "
            f"AUROC {_format(metrics['auroc'])}, average precision "
            f"{_format(metrics['average_precision'])}, precision at k={metrics['wrong_labels']} "
            f"{_format(metrics['precision_at_k'])}; flagged: precision "
            f"{_format(metrics['flagged_precision'])}, recall {_format(metrics['flagged_recall'])}."
        )
    for kind in ("csv", "json") + (("png",) if FLAGS.sheet else ()):
        print(f"Wrote {paths[kind]}")


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
