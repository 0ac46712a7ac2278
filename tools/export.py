"""Exports a trained model for TF Serving: <export_dir>/<version>/ (cleaner removed).

    python tools/export.py --model_dir=runs/quickstart/metacleaner \
        --export_dir=exports/fashion_mnist

reads <model_dir>/model.keras and the class names from <model_dir>/results.json
(key "class_names"), as written by tools/train.py. Or name the files:

    python tools/export.py --model=model.keras --class_names_file=names.txt \
        --export_dir=exports/fashion_mnist --version=3

--class_names_file is a text file with one name per line, or a JSON file with
a list or a "class_names" key. Prints the path of the written version.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "Training run directory with model.keras and results.json.")
flags.DEFINE_string("model", None, "Path of a .keras model file (instead of --model_dir).")
flags.DEFINE_string(
    "class_names_file",
    None,
    "Class names: text (one per line) or JSON (list or {'class_names': [...]}). "
    "Default: <model_dir>/results.json.",
)
flags.DEFINE_string("export_dir", None, "Export base: versions go to <export_dir>/<version>/.")
flags.DEFINE_integer("version", None, "Version to write; default: the next free one.")

MODEL_FILE = "model.keras"
RESULTS_FILE = "results.json"


def read_class_names(path: str) -> list[str]:
    """Class names from a text or JSON file."""
    if not os.path.isfile(path):
        raise app.UsageError(f"Class names file {path!r} does not exist.")
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    if path.endswith(".json"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise app.UsageError(f"{path!r} is not valid JSON: {error}") from error
        names = data.get("class_names") if isinstance(data, dict) else data
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise app.UsageError(
                f"{path!r} must hold a list of class names or a 'class_names' key with one."
            )
        return names
    return [line for line in text.splitlines() if line.strip()]


def resolve_inputs() -> tuple[str, str | None]:
    """The model file and the class names file, checked before any work."""
    if not FLAGS.export_dir:
        raise app.UsageError("--export_dir is required (e.g. --export_dir=exports/fashion_mnist).")
    if bool(FLAGS.model_dir) == bool(FLAGS.model):
        raise app.UsageError("Pass exactly one of --model_dir and --model.")
    if FLAGS.model_dir:
        if not os.path.isdir(FLAGS.model_dir):
            raise app.UsageError(f"--model_dir={FLAGS.model_dir!r} is not a directory.")
        model_path = os.path.join(FLAGS.model_dir, MODEL_FILE)
        if not os.path.isfile(model_path):
            raise app.UsageError(
                f"--model_dir={FLAGS.model_dir!r} has no {MODEL_FILE} (tools/train.py writes it)."
            )
    else:
        model_path = FLAGS.model
        if not os.path.isfile(model_path) or not model_path.endswith(".keras"):
            raise app.UsageError(f"--model={model_path!r} is not an existing .keras file.")
    names_path = FLAGS.class_names_file
    if names_path is None and FLAGS.model_dir:
        candidate = os.path.join(FLAGS.model_dir, RESULTS_FILE)
        names_path = candidate if os.path.isfile(candidate) else None
    if FLAGS.version is not None and FLAGS.version < 0:
        raise app.UsageError(f"--version must be a non-negative integer, got {FLAGS.version}.")
    if os.path.isfile(FLAGS.export_dir):
        raise app.UsageError(f"--export_dir={FLAGS.export_dir!r} is a file, not a directory.")
    return model_path, names_path


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    model_path, names_path = resolve_inputs()
    class_names = read_class_names(names_path) if names_path else None
    if class_names is None:
        print("warning: no class names found; class_name outputs will be ids.", file=sys.stderr)

    import keras

    import keras_metacleaner as kmc  # also registers the custom layers for loading

    model = keras.saving.load_model(model_path, compile=False)
    path = kmc.export.export_for_serving(
        model, FLAGS.export_dir, version=FLAGS.version, class_names=class_names
    )
    print(path)


if __name__ == "__main__":
    app.run(main)
