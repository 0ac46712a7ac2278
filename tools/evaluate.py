#!/usr/bin/env python
"""Evaluates a trained model on a dataset: top-1, top-5, per-class accuracy, confusion matrix.

    python tools/evaluate.py --model=runs/quickstart/metacleaner/model.keras \\
        --dataset=fashion_mnist --output_dir=runs/quickstart/metacleaner/eval
    python tools/evaluate.py --model=exports/fashion_mnist/1 --dataset=fashion_mnist

--model is a model.keras written by tools/train.py or a SavedModel directory from
tools/export.py. Writes <output_dir>/evaluation.json (the numbers, confusion matrix
included) and, when matplotlib is installed, confusion_matrix.png; matplotlib is
only in the dev extra, so without it the PNG is skipped with a warning.
Bad flags exit with code 2 before anything is written.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

# Run as a script or through runpy: its sibling modules are importable either way.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli import flags_parser, usage_error  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_metacleaner import data  # noqa: E402
from keras_metacleaner.training import evaluation  # noqa: E402
from keras_metacleaner.training.results import write_json_atomic  # noqa: E402

FLAGS = flags.FLAGS

flags.DEFINE_string("model", None, "A model.keras file or a SavedModel directory.")
flags.DEFINE_string("dataset", None, "Dataset spec (keras_metacleaner.data.load) to evaluate on.")
flags.DEFINE_enum("split", "test", ["test", "train"], "Which split of --dataset to evaluate.")
flags.DEFINE_integer(
    "image_size",
    0,
    "Resize images to this square size (0: the dataset's); "
    "use the size the model was trained with.",
)
flags.DEFINE_string(
    "output_dir",
    None,
    "Where evaluation.json and confusion_matrix.png (needs matplotlib) go "
    "(default: next to --model, in eval/).",
)
flags.DEFINE_integer("batch_size", 256, "Images per forward pass.")


def _fail(message: str) -> int:
    return usage_error("evaluate.py", message)


def matplotlib_available() -> bool:
    """Whether matplotlib imports, i.e. whether the confusion matrix PNG can be drawn.

    matplotlib is only in the `dev` extra, so a plain `pip install keras-metacleaner`
    lacks it; the report itself needs only NumPy.

    Returns:
        True when `import matplotlib` succeeds.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


parse_flags = flags_parser("evaluate.py", required=("model", "dataset"))


def main(argv: list[str]) -> int:
    """Validates the flags, evaluates the model and writes the report.

    Args:
        argv: what absl left after parsing the flags (the program name only).

    Returns:
        The exit code: 0, or 2 for a usage error.
    """
    if len(argv) > 1:
        return _fail(f"unexpected arguments {argv[1:]}")
    model_path = FLAGS.model.rstrip("/")
    if not os.path.exists(model_path):
        return _fail(f"--model={FLAGS.model}: no such file or directory.")
    problem = data.check_spec(FLAGS.dataset)
    if problem:
        return _fail(f"--dataset={FLAGS.dataset}: {problem}")
    if FLAGS.batch_size < 1:
        return _fail(f"--batch_size={FLAGS.batch_size} must be >= 1.")
    output_dir = FLAGS.output_dir or os.path.join(
        os.path.dirname(os.path.abspath(model_path)), "eval"
    )
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        return _fail(f"--output_dir={output_dir}: exists and is not a directory.")
    try:
        predict = evaluation.load_classifier(model_path)
    except ValueError as e:
        return _fail(str(e))

    train, test, info = data.load(FLAGS.dataset, image_size=FLAGS.image_size or None)
    report = evaluation.evaluate_classifier(
        predict, test if FLAGS.split == "test" else train, info.num_classes, FLAGS.batch_size
    )
    report = {
        "model": model_path,
        "dataset": FLAGS.dataset,
        "split": FLAGS.split,
        "class_names": list(info.class_names),
        **report,
    }
    json_path = write_json_atomic(os.path.join(output_dir, "evaluation.json"), report)
    png_path = os.path.join(output_dir, "confusion_matrix.png")
    # Checked only now, after the JSON is safe: the PNG is a picture of numbers the
    # JSON already holds, so a missing matplotlib costs the picture, not the run.
    if matplotlib_available():
        evaluation.save_confusion_png(
            report["confusion_matrix"],
            list(info.class_names),
            png_path,
            title=f"{os.path.basename(model_path)} on {FLAGS.dataset} ({FLAGS.split})",
        )
        written = f"{json_path} and {png_path}"
    else:
        # A PNG left by an earlier run would now sit next to a JSON it does not show.
        stale = os.path.exists(png_path)
        if stale:
            os.remove(png_path)
        sys.stderr.write(
            f"evaluate.py: warning: matplotlib is not installed, so {png_path} was not drawn"
            f"{' (the one from an earlier run was removed)' if stale else ''}; the confusion "
            f"matrix is in {json_path}. pip install matplotlib to draw it.\n"
        )
        written = json_path
    print(f"{report['num_examples']} {FLAGS.split} examples of {FLAGS.dataset}")
    print(f"top-1 accuracy: {100 * report['top1']:.2f}%")
    print(f"top-{report['top_k']} accuracy: {100 * report['top5']:.2f}%")
    width = max(len(n) for n in info.class_names)
    for name, acc in zip(info.class_names, report["per_class_accuracy"]):
        print(f"  {name.ljust(width)}  {'-' if acc is None else f'{100 * acc:.2f}%'}")
    print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=parse_flags)
