"""Makes the Fashion-MNIST confusion matrix behind `--noise_type=confusion`.

A clean classifier's mistakes say which classes look alike (Shirt vs T-shirt,
Pullover vs Coat). `add_label_noise(kind="confusion")` flips labels along
those mistakes, scaled to a chosen rate, for class-dependent noise that looks
like real annotation errors. This script trains the project's `small_cnn`
with a softmax head on the first 20,000 clean Fashion-MNIST training images,
then counts its predictions on 10,000 other training images (50,000-59,999:
neither fitted nor the test set) into a 10x10 matrix (rows: true class,
columns: predicted class). It takes about two CPU-minutes.

Run it from the repository root (the committed files come from this command):

    PYTHONPATH=$PWD .venv/bin/python benchmarks/data/make_fashion_mnist_confusion.py

Writes `benchmarks/data/fashion_mnist_confusion.npy` (int64 counts) and
`benchmarks/data/fashion_mnist_confusion.json` (how it was made, its accuracy
and the per-class error rates).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
FIT = slice(0, 20_000)
HELD_OUT = slice(50_000, 60_000)
COMMAND = "PYTHONPATH=$PWD .venv/bin/python benchmarks/data/make_fashion_mnist_confusion.py"


def _commit() -> dict:
    def git(*args):
        return subprocess.run(
            ["git", *args], cwd=HERE, capture_output=True, text=True, check=False
        ).stdout.strip()

    return {
        "sha": git("rev-parse", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=os.path.join(HERE, "fashion_mnist_confusion"))
    args = parser.parse_args(argv)

    import keras

    import keras_metacleaner as kmc

    commit = _commit()  # the code that made the file, before anything is written
    keras.utils.set_random_seed(args.seed)
    loaded = kmc.data.load("fashion_mnist")
    x = loaded.view.elements.astype("float32")
    y = loaded.labels
    classes = loaded.info.num_classes
    backbone = kmc.models.small_cnn(loaded.info.image_shape)
    model = keras.Sequential([backbone, keras.layers.Dense(classes, activation="softmax")])
    model.compile(
        optimizer=keras.optimizers.SGD(0.02, momentum=0.9),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    start = time.process_time()
    model.fit(x[FIT], y[FIT], batch_size=128, epochs=args.epochs, verbose=2, shuffle=True)
    predicted = model.predict(x[HELD_OUT], batch_size=1000, verbose=0).argmax(axis=1)
    counts = np.zeros((classes, classes), np.int64)
    np.add.at(counts, (y[HELD_OUT], predicted), 1)
    accuracy = float(np.trace(counts) / counts.sum())
    record = {
        "what": "confusion counts of a clean small_cnn on Fashion-MNIST "
        "(rows: true class, columns: predicted class)",
        "command": COMMAND,
        "fit": "training images 0-19999, clean labels, SGD 0.02 momentum 0.9, batch 128, "
        f"{args.epochs} epochs, seed {args.seed}",
        "counted_on": "training images 50000-59999 (not fitted, not the test set)",
        "accuracy": round(accuracy, 4),
        "per_class_error": {
            name: round(1 - counts[c, c] / counts[c].sum(), 4)
            for c, name in enumerate(loaded.info.class_names)
        },
        "cpu_seconds": round(time.process_time() - start, 1),
        "commit": commit,
        "counts": counts.tolist(),
    }
    np.save(args.output + ".npy", counts)
    with open(args.output + ".json", "w", encoding="utf-8") as handle:
        text = json.dumps({**record, "counts": "ROWS"}, indent=1)
        rows = ",\n  ".join(json.dumps(row) for row in counts.tolist())
        handle.write(text.replace('"ROWS"', f"[\n  {rows}\n ]") + "\n")
    print(json.dumps({k: record[k] for k in ("accuracy", "cpu_seconds")}))
    return record


if __name__ == "__main__":
    main()
