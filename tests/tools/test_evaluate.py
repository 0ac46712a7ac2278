"""tools/evaluate.py as a process: the JSON report always, the PNG only with matplotlib."""

import json
import os
import subprocess

import keras
import numpy as np
import pytest
from test_case import write_noisy_npz

from tools.tool_helpers import PYTHON, ROOT, TOOLS, subprocess_env

pytestmark = pytest.mark.slow

# Runs the tool as __main__ after making `import matplotlib` fail the way it does
# when the package is not installed (a None entry in sys.modules raises ImportError),
# as for a plain `pip install keras-metacleaner`, whose dependencies lack matplotlib.
_WITHOUT_MATPLOTLIB = """
import runpy, sys
sys.modules["matplotlib"] = None
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """`(npz path, model.keras path)`: the toy dataset and an untrained softmax classifier."""
    directory = tmp_path_factory.mktemp("evaluate")
    npz = write_noisy_npz(str(directory / "toy.npz"))
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Flatten(),
            keras.layers.Dense(4, activation="softmax"),
        ]
    )
    path = str(directory / "model.keras")
    model.save(path)
    return npz, path


def _expected_confusion(npz: str, model_path: str) -> list[list[int]]:
    """The `[true][predicted]` counts of the model on the test split, computed here."""
    data = np.load(npz)
    predicted = keras.saving.load_model(model_path).predict(data["x_test"], verbose=0).argmax(-1)
    confusion = np.zeros((4, 4), np.int64)
    np.add.at(confusion, (data["y_test"].astype(np.int64), predicted), 1)
    return confusion.tolist()


def _evaluate(npz: str, model_path: str, output_dir, with_matplotlib: bool):
    args = [
        os.path.join(TOOLS, "evaluate.py"),
        f"--model={model_path}",
        f"--dataset=npz:{npz}",
        f"--output_dir={output_dir}",
    ]
    command = [PYTHON, *args] if with_matplotlib else [PYTHON, "-c", _WITHOUT_MATPLOTLIB, *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=300, env=subprocess_env(), cwd=ROOT
    )


@pytest.mark.parametrize("with_matplotlib", [True, False], ids=["matplotlib", "no_matplotlib"])
def test_report_is_written_and_png_only_with_matplotlib(toy, tmp_path, with_matplotlib):
    if with_matplotlib:
        pytest.importorskip("matplotlib")
    npz, model_path = toy
    output_dir = tmp_path / "eval"
    output_dir.mkdir()
    png = output_dir / "confusion_matrix.png"
    # Left by an earlier run: without matplotlib it must not survive next to a new JSON.
    png.write_bytes(b"stale")

    done = _evaluate(npz, model_path, output_dir, with_matplotlib)
    assert done.returncode == 0, done.stderr[-3000:]

    report = json.loads((output_dir / "evaluation.json").read_text())
    confusion = _expected_confusion(npz, model_path)
    assert report["confusion_matrix"] == confusion
    assert report["num_examples"] == 48
    assert report["top1"] == pytest.approx(np.trace(confusion) / 48)
    assert 0.0 <= report["top1"] <= report["top5"] <= 1.0
    assert len(report["per_class_accuracy"]) == 4
    assert f"top-1 accuracy: {100 * report['top1']:.2f}%" in done.stdout

    warnings = [line for line in done.stderr.splitlines() if "matplotlib" in line]
    if with_matplotlib:
        assert png.read_bytes()[:4] == b"\x89PNG"
        assert warnings == []
        assert f"wrote {output_dir / 'evaluation.json'} and {png}" in done.stdout
    else:
        assert not png.exists()
        assert os.listdir(output_dir) == ["evaluation.json"]
        assert len(warnings) == 1, done.stderr[-3000:]
        assert str(png) in warnings[0] and "pip install matplotlib" in warnings[0]
        assert f"wrote {output_dir / 'evaluation.json'}\n" in done.stdout
