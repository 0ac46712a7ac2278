"""tools/train.py and tools/evaluate.py as processes: kill -9 + resume, multi-worker, mirrored."""

import json
import os
import signal
import subprocess
import time

import pytest
from test_case import write_noisy_npz

from tools.tool_helpers import PYTHON, TOOLS, free_ports, run_tool, subprocess_env, wait_all

pytestmark = pytest.mark.slow


def _args(data, model_dir, *extra):
    return [
        f"--dataset=npz:{data}",
        f"--model_dir={model_dir}",
        "--batch_size=16",
        "--verbose=2",
        *extra,
    ]


def _epochs_logged(path):
    try:
        with open(path) as f:
            return len(json.load(f))
    except (OSError, ValueError):
        return 0


def test_kill_9_mid_training_then_resume(tmp_path):
    data = write_noisy_npz(str(tmp_path / "toy.npz"), train_per_class=300)
    model_dir = tmp_path / "run"
    args = _args(data, model_dir, "--epochs=6", "--train_subset=1200")
    proc = subprocess.Popen(
        [PYTHON, os.path.join(TOOLS, "train.py"), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=subprocess_env(),
    )
    deadline = time.time() + 240
    try:
        while _epochs_logged(model_dir / "history.json") < 2:
            assert proc.poll() is None, "training ended before it could be killed"
            assert time.time() < deadline, "no epoch finished in time"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    done_before = _epochs_logged(model_dir / "history.json")
    assert 2 <= done_before < 6
    assert (model_dir / "backup").is_dir() and not (model_dir / "results.json").exists()

    finished = run_tool("train", args)
    assert finished.returncode == 0, finished.stderr[-3000:]
    results = json.loads((model_dir / "results.json").read_text())
    assert [e["epoch"] for e in results["history"]] == list(range(6))
    # The second run started after the epochs whose state the backup held.
    assert "[train] epoch 1/6" not in finished.stderr
    assert "[train] epoch 6/6" in finished.stderr
    assert not (model_dir / "backup").exists()
    with open(model_dir / "log.csv") as f:
        epochs = [line.split(",")[0] for line in f.read().splitlines()[1:]]
    assert sorted(set(epochs)) == [str(e) for e in range(6)]


def test_multi_worker_two_local_processes(tmp_path):
    data = write_noisy_npz(str(tmp_path / "toy.npz"))
    model_dir, export_dir = tmp_path / "run", tmp_path / "export"
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    args = _args(
        data, model_dir, "--epochs=2", "--strategy=multi_worker", f"--export_dir={export_dir}"
    )
    procs, temps = [], []
    for index in range(2):
        temp = tmp_path / f"tmp{index}"
        temp.mkdir()
        temps.append(temp)
        env = subprocess_env(
            TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
            TMPDIR=str(temp),
        )
        procs.append(
            subprocess.Popen(
                [PYTHON, os.path.join(TOOLS, "train.py"), *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
        )
    outputs = wait_all(procs, timeout=240)
    results = json.loads((model_dir / "results.json").read_text())
    assert results["strategy"] == {"name": "multi_worker", "replicas": 2}
    assert [e["epoch"] for e in results["history"]] == [0, 1]
    assert 0.0 <= results["test_accuracy"] <= 1.0
    # Only the chief printed the table, wrote results and exported once.
    assert "test accuracy (final epoch)" in outputs[0][0] and "test accuracy" not in outputs[1][0]
    assert os.listdir(export_dir) == ["1"]
    assert results["export_path"] == str(export_dir / "1")
    assert not (model_dir / "backup").exists()
    assert os.listdir(temps[1]) == [], "the worker's temporary output was not deleted"


def test_mirrored_on_two_logical_cpus_then_evaluate(tmp_path):
    data = write_noisy_npz(str(tmp_path / "toy.npz"))
    model_dir = tmp_path / "run"
    done = run_tool(
        "train", _args(data, model_dir, "--epochs=1", "--strategy=mirrored", "--logical_cpus=2")
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((model_dir / "results.json").read_text())
    assert results["strategy"] == {"name": "mirrored", "replicas": 2}

    evaluated = run_tool(
        "evaluate",
        [
            f"--model={model_dir / 'model.keras'}",
            f"--dataset=npz:{data}",
            f"--output_dir={tmp_path / 'eval'}",
        ],
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    report = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert report["top1"] == pytest.approx(results["test_accuracy"], abs=1e-6)
    assert report["num_examples"] == 48 and len(report["confusion_matrix"]) == 4
    assert (tmp_path / "eval" / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert f"top-1 accuracy: {100 * report['top1']:.2f}%" in evaluated.stdout

    bad = run_tool("evaluate", [f"--model={tmp_path / 'nope.keras'}", f"--dataset=npz:{data}"])
    assert bad.returncode == 2 and "--model=" in bad.stderr
