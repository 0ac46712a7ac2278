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
        "--methods=baseline,label_confidence_rel+rawmember",
        f"--out={out}",
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["method"] for r in results) == ["baseline", "label_confidence_rel+rawmember"]
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


def _accuracy_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "accuracy_benchmark", os.path.join(ROOT, "benchmarks", "accuracy.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_method_names_spell_out_every_option():
    accuracy = _accuracy_module()
    assert accuracy.method_kwargs("baseline") is None
    assert accuracy.method_kwargs("label_confidence_rel_g2_f0.01+rawmember0.5") == {
        "weighting": "label_confidence",
        "weighting_args": {"relative": True, "gamma": 2.0, "floor": 0.01},
        "member_loss_weight": 0.5,
        "normalize_member_weights": False,
    }
    # Old names keep the meaning they were measured with, whatever the defaults.
    assert accuracy.method_kwargs("label_confidence+member") == {
        "weighting": "label_confidence",
        "weighting_args": {"relative": False},
        "member_loss_weight": 1.0,
        "normalize_member_weights": True,
    }
    assert accuracy.method_kwargs("label_posterior_rel_m1_p0.5+rawmember+subsetmax") == {
        "weighting": "label_posterior",
        "weighting_args": {"relative": True, "flip_classes": 1, "min_clean_prior": 0.5},
        "member_loss_weight": 1.0,
        "normalize_member_weights": False,
        "subset_loss_weights": "max_alpha",
        "normalize_subset_weights": False,
    }
    assert accuracy.method_kwargs("label_confidence+rawmember+subsetmeann")[
        "normalize_subset_weights"
    ]
    # Without _m / _p: wrong labels spread over every other class, π >= 0.01,
    # whatever the defaults.
    old = accuracy.method_kwargs("label_posterior")["weighting_args"]
    assert old["flip_classes"] is None and old["min_clean_prior"] == 0.01
    for bad in ("label_confidence_x", "label_confidence_m1", "label_confidence_p0.5"):
        with pytest.raises(KeyError):
            accuracy.method_kwargs(bad)
    assert accuracy.method_kwargs("fc_fc_relu_sig.warmup5") == {
        "weighting": "fc_fc_relu_sig",
        "warmup_epochs": 5,
    }
    # Callers consume the dict (run_one pops weighting_args): METHODS must not change.
    accuracy.method_kwargs("fc_fc_relu_sig.bias1").pop("weighting_args")
    assert accuracy.METHODS["fc_fc_relu_sig.bias1"]["weighting_args"] == {"output_bias": 1.0}
    for methods, _, _ in accuracy.SUITES.values():
        for name in methods:
            accuracy.method_kwargs(name)


def test_report_filters_methods_sizes_and_schedule(tmp_path):
    accuracy = _accuracy_module()
    out = tmp_path / "results.jsonl"
    base = dict(noise_type="symmetric", noise_rate=0.4, epochs=30, train_size=10, seed=0)
    rows = [
        dict(base, method="baseline", subset_size=4, lr_decay_epochs=0),
        dict(base, method="constant", subset_size=4, lr_decay_epochs=0),
        dict(base, method="constant", subset_size=2, lr_decay_epochs=0),
        dict(base, method="constant", subset_size=4, lr_decay_epochs=10),
    ]
    out.write_text(
        "".join(json.dumps(dict(r, best_accuracy=0.5, final_accuracy=0.4)) + "\n" for r in rows)
    )

    def table_rows(**filters):
        return accuracy.report(str(out), **filters).splitlines()[2:]

    assert len(table_rows()) == 4
    assert len(table_rows(methods=["constant"])) == 3
    assert len(table_rows(subset_sizes=[2])) == 1
    constant_rate = table_rows(lr_decay_epochs=0)
    assert len(constant_rate) == 3 and all("| – |" in row for row in constant_rate)
    assert len(table_rows(methods=["constant"], subset_sizes=[4], lr_decay_epochs=10)) == 1
    assert len(table_rows(noises=[("symmetric", 0.4)])) == 4
    assert table_rows(noises=[("symmetric", 0.2)]) == []
