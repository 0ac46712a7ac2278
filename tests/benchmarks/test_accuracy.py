"""One-seed smoke run of benchmarks/accuracy.py: it runs and writes its JSON lines."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
def test_quick_run_writes_one_result_per_method(tmp_path):
    out = tmp_path / "accuracy.jsonl"
    command = [
        sys.executable,
        os.path.join(ROOT, "benchmarks", "accuracy.py"),
        "--quick",
        "--jobs=0",
        "--methods=baseline,label_confidence+member",
        f"--out={out}",
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["method"] for r in results) == ["baseline", "label_confidence+member"]
    for result in results:
        assert len(result["test_accuracy_curve"]) == result["epochs"] == 2
        assert 0.0 <= result["final_accuracy"] <= 1.0
        assert result["best_accuracy"] == max(result["test_accuracy_curve"])
        assert abs(result["realised_noise"] - 0.4) < 0.01
    cleaner = next(r for r in results if r["method"] != "baseline")
    assert 0.0 <= cleaner["alpha_auroc"] <= 1.0
    assert 0.0 <= cleaner["alpha_floor"] <= 1.0
    # The Markdown report renders both rows.
    assert completed.stdout.count("| symmetric 40% |") == 2

    # A second run finds both results already measured and trains nothing.
    again = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "2 runs, 2 already in" in again.stdout
    assert len(out.read_text().splitlines()) == 2


def test_unknown_method_is_rejected_before_any_work(tmp_path):
    completed = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "accuracy.py"), "--methods=nope"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 2
    assert "unknown method 'nope'" in completed.stderr
