"""Ranks the training labels most likely to be wrong, using a trained MetaCleaner.

Each example is scored by its share of the cleaner's weight over random subsets of its own
(noisy) class (`keras_metacleaner.analysis.alpha_scores`); the lowest scores come first.

    python tools/find_label_issues.py --model=runs/quickstart/metacleaner/model.keras \
        --dataset=npz:my_data.npz --output=label_issues.csv
    python tools/find_label_issues.py --model=runs/quickstart/metacleaner/model.keras \
        --dataset=fashion_mnist --train_subset=10000 --noise_type=symmetric --noise_rate=0.4

With `--noise_rate` the same noise as the training run is injected (same `--seed`), so the
ranking can be checked against the flips; with `npz` `y_train_clean` the true labels are used.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "model", None, "A trained MetaCleanerModel (.keras), e.g. <model_dir>/model.keras."
)
flags.DEFINE_string(
    "dataset", None, "Dataset spec of keras_metacleaner.data.load (its train split)."
)
flags.DEFINE_enum("noise_type", "none", ["none", "symmetric", "pairflip"], "Noise to inject.")
flags.DEFINE_float("noise_rate", 0.0, "Fraction of labels to corrupt, in [0, 1).")
flags.DEFINE_integer("seed", 0, "Seed of the injected noise and of the subset draws.")
flags.DEFINE_integer(
    "train_subset", 0, "As in train.py: keep the first this many examples, then inject noise."
)
flags.DEFINE_integer("draws", 4, "Random subset partitions to average each score over.")
flags.DEFINE_integer("max_examples", 20000, "Score at most this many training examples.")
flags.DEFINE_string("output", "label_issues.csv", "CSV written: rank, index, label, score, ...")
flags.DEFINE_integer("top", 20, "How many of the most suspicious examples to print.")


def _fail(message: str) -> None:
    print(f"find_label_issues.py: error: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv):
    del argv
    if not FLAGS.model or not os.path.isfile(FLAGS.model):
        _fail(f"--model={FLAGS.model!r} is not a file; pass a trained model.keras.")
    if not FLAGS.dataset:
        _fail("--dataset is required (e.g. fashion_mnist or npz:PATH).")
    if not 0.0 <= FLAGS.noise_rate < 1.0:
        _fail(f"--noise_rate={FLAGS.noise_rate} must be in [0, 1).")
    if FLAGS.draws < 1 or FLAGS.max_examples < 1 or FLAGS.train_subset < 0:
        _fail("--draws and --max_examples must be >= 1, --train_subset >= 0.")

    import keras
    import numpy as np

    import keras_metacleaner as kmc

    try:
        train, _, info = kmc.data.load(FLAGS.dataset)
    except (ValueError, FileNotFoundError) as error:
        _fail(f"--dataset={FLAGS.dataset!r}: {error}")
    model = keras.models.load_model(FLAGS.model)
    if not isinstance(model, kmc.MetaCleanerModel):
        _fail(f"--model={FLAGS.model!r} is a {type(model).__name__}, not a MetaCleanerModel.")

    labels = info.train_labels
    true = info.train_clean_labels
    if FLAGS.train_subset:
        labels = labels[: FLAGS.train_subset]
        true = None if true is None else true[: FLAGS.train_subset]
    if FLAGS.noise_type != "none" and FLAGS.noise_rate > 0:
        # The same order as train.py (cut, then noise) gives the same flips for the same seed.
        true = labels
        labels, _ = kmc.data.add_label_noise(
            labels, FLAGS.noise_rate, FLAGS.noise_type, info.num_classes, seed=FLAGS.seed
        )
    take = min(FLAGS.max_examples, len(labels))
    images = np.concatenate([x for x, _ in train.take(take).batch(1024).as_numpy_iterator()])
    given = labels[:take]
    true = None if true is None else true[:take]

    scores = kmc.analysis.alpha_scores(model, images, given, draws=FLAGS.draws, seed=FLAGS.seed)
    order = kmc.analysis.rank_label_issues(scores)
    names = info.class_names

    directory = os.path.dirname(os.path.abspath(FLAGS.output))
    os.makedirs(directory, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=directory, delete=False, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["rank", "index", "label", "class_name", "score"]
            + (["true_label"] if true is not None else [])
        )
        for rank, index in enumerate(order):
            row = [rank, int(index), int(given[index]), names[given[index]], f"{scores[index]:.4f}"]
            writer.writerow(row + ([int(true[index])] if true is not None else []))
    os.replace(f.name, FLAGS.output)

    print(f"Scored {take} examples; most suspicious first (score 1.0 = average weight):")
    for index in order[: FLAGS.top]:
        extra = "" if true is None else f"  true: {names[true[index]]}"
        print(f"  #{index:<7d} label: {names[given[index]]:<20s} score {scores[index]:.3f}{extra}")
    if true is not None:
        wrong = given != true
        summary = {
            "alpha_auroc": kmc.analysis.auroc(scores, ~wrong),
            "wrong_labels": int(wrong.sum()),
            "wrong_in_top_k": int(wrong[order[: int(wrong.sum())]].sum()),
        }
        print(json.dumps(summary))
    print(f"Wrote {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
