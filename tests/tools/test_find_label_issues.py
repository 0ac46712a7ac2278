"""tools/find_label_issues.py: the ranked CSV, the metrics JSON, the contact sheet, bad flags."""

import csv
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image
from test_case import write_noisy_npz

import keras_metacleaner as kmc

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, "tools", "find_label_issues.py")
COLUMNS = [
    "index",
    "given_label",
    "given_class",
    "predicted_label",
    "predicted_class",
    "alpha_score",
    "label_probability",
    "suspicion",
]


def _run(*args, cwd=ROOT):
    env = {**os.environ, "PYTHONPATH": ROOT}
    return subprocess.run(
        [sys.executable, TOOL, *args], capture_output=True, text=True, timeout=600, cwd=cwd, env=env
    )


def _model_dir(tmp_path, kind: str) -> str:
    """A run directory: model.keras and a results.json naming the dataset, as train.py leaves."""
    npz = write_noisy_npz(str(tmp_path / "toy.npz"))
    run = tmp_path / kind
    run.mkdir()
    backbone = kmc.models.small_cnn((8, 8, 1), feature_dim=8)
    if kind == "metacleaner":
        model = kmc.MetaCleanerModel(backbone, num_classes=4, subset_size=2, seed=0)
    else:
        model = kmc.training.plain_classifier(backbone, 4)
    # Compiled with the library's optimizer, as train.py saves it: the tool must load it
    # without importing the training package.
    model.compile(optimizer=kmc.training.SGDL2(0.01), loss="sparse_categorical_crossentropy")
    model.save(run / "model.keras")
    flags = {"dataset": f"npz:{npz}", "noise_type": "none", "noise_rate": 0.0, "seed": 0}
    (run / "results.json").write_text(json.dumps({"flags": flags}))
    return str(run)


@pytest.mark.slow
def test_writes_the_ranked_csv_metrics_and_sheet_next_to_the_model(tmp_path):
    run = _model_dir(tmp_path, "metacleaner")
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    done = _run(f"--model={run}/model.keras", "--sheet=6", "--top=3", cwd=cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not os.listdir(cwd)  # never the current directory
    written = sorted(os.listdir(run))
    assert written == sorted(
        ["model.keras", "results.json", "label_issues.csv", "label_issues.json", "label_issues.png"]
    )

    with open(os.path.join(run, "label_issues.csv")) as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == COLUMNS  # no path column: the npz has no files
    data = np.load(tmp_path / "toy.npz")
    assert sorted(int(r["index"]) for r in rows) == list(range(len(data["y_train"])))
    suspicion = [float(r["suspicion"]) for r in rows]
    assert suspicion == sorted(suspicion, reverse=True)
    names = [str(n) for n in data["class_names"]]
    for row in rows[:10]:
        assert int(row["given_label"]) == data["y_train"][int(row["index"])]
        assert row["given_class"] == names[int(row["given_label"])]
        assert row["predicted_class"] == names[int(row["predicted_label"])]
        assert 0.0 <= float(row["label_probability"]) <= 1.0
        assert 0.0 < float(row["alpha_score"]) <= 1.0

    summary = json.loads(open(os.path.join(run, "label_issues.json")).read())
    metrics = summary["metrics"]  # y_train_clean in the npz: the true labels are known
    wrong = int((data["y_train"] != data["y_train_clean"]).sum())
    assert metrics["wrong_labels"] == wrong and metrics["examples"] == len(rows)
    for key in ("auroc", "average_precision", "precision_at_k"):
        assert 0.0 <= metrics[key] <= 1.0
    assert summary["flagged"] == metrics["flagged"]
    assert "AUROC" in done.stdout and f"k={wrong}" in done.stdout

    with Image.open(os.path.join(run, "label_issues.png")) as sheet:
        assert sheet.format == "PNG" and sheet.size[0] > 6 * 8


@pytest.mark.slow
def test_plain_classifier_csv_path_and_flags_that_override_the_run(tmp_path):
    run = _model_dir(tmp_path, "baseline")
    out = tmp_path / "issues" / "ranked.csv"
    done = _run(
        f"--model={run}/model.keras",
        f"--output={out}",
        "--noise_type=symmetric",
        "--noise_rate=0.5",
        "--max_examples=40",
        "--top=0",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(os.listdir(out.parent)) == ["ranked.csv", "ranked.json"]
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 40
    assert {r["alpha_score"] for r in rows} == {""}  # a plain classifier has no α
    summary = json.loads((out.parent / "ranked.json").read_text())
    assert summary["examples"] == 40 and summary["settings"]["noise_rate"] == 0.5
    # The noise of train.py (same seed) on top of the npz's labels, then the first 40.
    data = np.load(tmp_path / "toy.npz")
    noisy, _ = kmc.data.add_label_noise(data["y_train"], 0.5, "symmetric", 4, seed=0)
    wrong = int((noisy != data["y_train_clean"])[:40].sum())
    assert summary["metrics"]["wrong_labels"] == wrong


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model=/no/model.keras"], "--model='/no/model.keras' is not a file"),
        (["--noise_rate=1.5"], "--noise_rate=1.5 must be in [0, 1)"),
        (["--draws=0"], "--draws=0 must be >= 1"),
        (["--sheet=-1"], "--sheet=-1 must be >= 0"),
        (["--threshold=2"], "--threshold=2.0 must be in [0, 1]"),
        (["--draws=x"], "flag --draws=x"),
        (["--no_such_flag"], "no_such_flag"),
        (["positional"], "unexpected argument 'positional'"),
    ],
)
def test_bad_flags_exit_2_before_writing(tmp_path, args, message):
    model = tmp_path / "m.keras"
    model.write_text("not a model")
    done = _run(f"--model={model}", *args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert os.listdir(tmp_path) == ["m.keras"]


@pytest.mark.parametrize(
    "setup, message",
    [
        ("output_under_file", "is not a writable directory"),
        ("not_a_model", "cannot be loaded"),
        ("wrong_classes", "predicts 3 classes but --dataset="),
    ],
)
@pytest.mark.slow
def test_bad_files_exit_2_before_writing(tmp_path, setup, message):
    npz = write_noisy_npz(str(tmp_path / "toy.npz"))
    model = tmp_path / "model.keras"
    args = [f"--model={model}", f"--dataset=npz:{npz}"]
    if setup == "not_a_model":
        model.write_text("not a model")
    else:
        classes = 3 if setup == "wrong_classes" else 4
        keras.Sequential(
            [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(classes)]
        ).save(model)
    if setup == "output_under_file":
        (tmp_path / "file").write_text("")
        args.append(f"--output={tmp_path / 'file' / 'out'}")
    before = sorted(os.listdir(tmp_path))
    done = _run(*args)
    assert done.returncode == 2, done.stderr[-2000:]
    assert message in done.stderr.strip().splitlines()[-1]
    assert sorted(os.listdir(tmp_path)) == before
