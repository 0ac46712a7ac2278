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

# Run as a script or through runpy: its sibling modules are importable either way.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli import UsageError, flags_parser, one_line, usage_error  # noqa: E402

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


def read_class_names(path: str, source: str | None = None) -> list[str]:
    """Class names from a text or JSON file, checked the way the export stores them.

    Args:
        path: the file.
        source: how error messages name it (default `--class_names_file=<path>`).
    """
    source = source or f"--class_names_file={path}"
    if not os.path.isfile(path):
        raise UsageError(f"{source}: no such file.")
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    if path.endswith(".json"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise UsageError(f"{source}: not valid JSON ({error}).") from None
        names = data.get("class_names") if isinstance(data, dict) else data
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise UsageError(
                f"{source}: expected a list of class names or a 'class_names' key with one."
            )
    else:
        names = [line for line in text.splitlines() if line.strip()]
    for i, name in enumerate(names):
        if not name.strip() or "\n" in name or "\r" in name:
            raise UsageError(
                f"{source}: class name {i} is {name!r}; every name must be "
                "non-empty and on one line."
            )
    if not names:
        raise UsageError(f"{source}: holds no class names.")
    return names


def _check_creatable(flag: str, path: str) -> None:
    """`path` is a directory or can become one (no parent of it is a file)."""
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        what = "is a file" if existing == os.path.abspath(path) else f"is under the file {existing}"
        raise UsageError(f"--{flag}={path} {what}; pass a directory.")


def resolve_inputs() -> tuple[str, str | None]:
    """The model file and the class names file, checked before TensorFlow is imported."""
    if not FLAGS.export_dir:
        raise UsageError("--export_dir is required (e.g. --export_dir=exports/fashion_mnist).")
    if bool(FLAGS.model_dir) == bool(FLAGS.model):
        raise UsageError("pass exactly one of --model_dir and --model.")
    if FLAGS.model_dir:
        if not os.path.isdir(FLAGS.model_dir):
            raise UsageError(f"--model_dir={FLAGS.model_dir} is not a directory.")
        model_path = os.path.join(FLAGS.model_dir, MODEL_FILE)
        if not os.path.isfile(model_path):
            raise UsageError(
                f"--model_dir={FLAGS.model_dir} has no {MODEL_FILE} (tools/train.py writes it)."
            )
    else:
        model_path = FLAGS.model
        if not os.path.isfile(model_path) or not model_path.endswith(".keras"):
            raise UsageError(f"--model={model_path} is not an existing .keras file.")
    names_path = FLAGS.class_names_file
    if names_path is None and FLAGS.model_dir:
        candidate = os.path.join(FLAGS.model_dir, RESULTS_FILE)
        names_path = candidate if os.path.isfile(candidate) else None
    if FLAGS.version is not None and FLAGS.version < 0:
        raise UsageError(f"--version={FLAGS.version}: expected a non-negative integer.")
    _check_creatable("export_dir", FLAGS.export_dir)
    if FLAGS.version is not None and os.path.exists(
        os.path.join(FLAGS.export_dir, str(FLAGS.version))
    ):
        raise UsageError(
            f"--version={FLAGS.version}: {os.path.join(FLAGS.export_dir, str(FLAGS.version))} "
            "already exists and is never overwritten; pass another --version, or none for the "
            "next free one."
        )
    return model_path, names_path


parse_flags = flags_parser("export.py")


def _export(model_path: str, class_names: list[str] | None) -> str:
    import keras

    import keras_metacleaner as kmc

    # The package imports its subpackages on first use: import the ones whose classes a
    # model.keras may name (old names of moved classes are registered in experimental).
    for name in ("layers", "models", "losses", "experimental"):
        getattr(kmc, name)

    try:
        model = keras.saving.load_model(model_path, compile=False)
    except Exception as error:  # Keras raises many types for a file that is not a model
        flag = f"--model_dir={FLAGS.model_dir}" if FLAGS.model_dir else f"--model={model_path}"
        raise UsageError(
            f"{flag}: cannot load {model_path} as a Keras model ({type(error).__name__}: "
            f"{one_line(error)[:300]})."
        ) from None
    try:
        return kmc.export.export_for_serving(
            model, FLAGS.export_dir, version=FLAGS.version, class_names=class_names
        )
    except (ValueError, TypeError, FileExistsError, NotADirectoryError) as error:
        # Raised before anything is written (the version appears in one rename).
        raise UsageError(one_line(error)) from None


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        return usage_error("export.py", f"unexpected arguments {argv[1:]}")
    try:
        model_path, names_path = resolve_inputs()
        source = None
        if names_path and not FLAGS.class_names_file:
            source = f"--model_dir={FLAGS.model_dir} ({names_path})"
        class_names = read_class_names(names_path, source) if names_path else None
        if class_names is None:
            print("warning: no class names found; class_name outputs will be ids.", file=sys.stderr)
        path = _export(model_path, class_names)
    except UsageError as error:
        return usage_error("export.py", error)
    print(path)
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=parse_flags)
