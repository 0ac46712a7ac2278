"""tools/find_label_issues.py: ranks labels, writes the CSV, rejects bad flags."""

import csv
import os
import subprocess
import sys

import numpy as np
import pytest
from test_case import write_noisy_npz

import keras_metacleaner as kmc

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, "tools", "find_label_issues.py")


def _run(*args):
    return subprocess.run(
        [sys.executable, TOOL, *args], capture_output=True, text=True, timeout=600, cwd=ROOT
    )


@pytest.mark.slow
def test_ranks_every_example_and_scores_the_known_wrong_labels(tmp_path):
    npz = write_noisy_npz(str(tmp_path / "toy.npz"))
    model = kmc.MetaCleanerModel(
        kmc.models.small_cnn((8, 8, 1), feature_dim=8), num_classes=4, subset_size=2, seed=0
    )
    model.save(tmp_path / "model.keras")
    out = tmp_path / "issues" / "ranked.csv"
    done = _run(
        f"--model={tmp_path / 'model.keras'}", f"--dataset=npz:{npz}", f"--output={out}", "--top=3"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with open(out) as f:
        rows = list(csv.DictReader(f))
    data = np.load(npz)
    assert len(rows) == len(data["y_train"])
    assert sorted(int(r["index"]) for r in rows) == list(range(len(rows)))
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores)
    for row in rows[:5]:
        assert int(row["label"]) == data["y_train"][int(row["index"])]
        assert int(row["true_label"]) == data["y_train_clean"][int(row["index"])]
    assert '"alpha_auroc"' in done.stdout
    assert not [p for p in os.listdir(out.parent) if p != "ranked.csv"]  # no temp file left


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model=/no/model.keras", "--dataset=fashion_mnist"], "--model='/no/model.keras'"),
        (["--noise_rate=1.5"], "--noise_rate=1.5 must be in [0, 1)"),
        (["--draws=0"], "--draws and --max_examples must be >= 1"),
    ],
)
def test_bad_flags_exit_2(tmp_path, args, message):
    model = tmp_path / "m.keras"
    model.write_text("not a model")
    base = [f"--model={model}", "--dataset=fashion_mnist", f"--output={tmp_path / 'o.csv'}"]
    done = _run(*base, *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert not (tmp_path / "o.csv").exists()
