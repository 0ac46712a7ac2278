"""benchmarks/accuracy.py in its tiny mode: formats, resume and the schedule selection.

Never accuracy or time: the grid logic runs on a fake runner, and one real
one-epoch run on tiny data checks that a record comes from `kmc.training.run`.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _module():
    spec = importlib.util.spec_from_file_location(
        "kmc_bench_accuracy", os.path.join(ROOT, "benchmarks", "accuracy.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


accuracy = _module()

# Seed-0 noisy-validation score of each (method, schedule): the chosen ones are the maxima.
SCORES = {
    ("baseline", "constant"): 0.70,
    ("baseline", "step"): 0.75,
    ("baseline", "cosine"): 0.80,
    ("paper", "constant"): 0.78,
    ("paper", "step"): 0.78,  # a tie: the earlier schedule wins
    ("paper", "cosine"): 0.60,
}


def _fake_runner(calls):
    def runner(task):
        spec, run_dir, commit, command = task
        calls.append((spec["method"], spec["schedule"], spec["seed"]))
        score = SCORES[(spec["method"], spec["schedule"])]
        results = {
            "history": [{"val_accuracy": 0.5, "noisy_val_accuracy": score}],
            "final_test_accuracy": 0.5,
            "picked_test_accuracy": score,
            "oracle_best_test_accuracy": 0.9,
            "selection": {"score": score, "epoch": 0},
            "flags": {},
        }
        return accuracy.record_from_results(spec, results, commit, command)

    return runner


def _args(out, *extra):
    parser_args = [
        "--methods=baseline,paper",
        "--noise=symmetric:0.4",
        "--seeds=3",
        f"--out={out}",
        *extra,
    ]
    # Parse as main does, without running it.
    import argparse

    ns = argparse.Namespace(
        methods=["baseline", "paper"],
        noises=[("symmetric", 0.4)],
        schedules=list(accuracy.SCHEDULES),
        seeds=3,
        dataset="fashion_mnist",
        epochs=2,
        train_size=100,
        validation_split=0.1,
        learning_rate=0.02,
        batch_size=32,
        jobs=0,
        out=str(out),
        run_root=str(out) + ".runs",
        argv=parser_args,
    )
    return ns


def test_schedule_chosen_on_seed_0_then_seeds_1_2_and_resume(tmp_path):
    out = tmp_path / "acc.jsonl"
    calls = []
    commit = {"sha": "abc", "dirty": True}
    accuracy.run_grid(_args(out), runner=_fake_runner(calls), commit=commit)
    # Phase 1: every schedule on seed 0; phase 2: seeds 1-2 at the chosen schedule.
    assert sorted(c for c in calls if c[2] == 0) == sorted(
        (m, s, 0) for m in ("baseline", "paper") for s in accuracy.SCHEDULES
    )
    assert sorted(c for c in calls if c[2] > 0) == [
        ("baseline", "cosine", 1),
        ("baseline", "cosine", 2),
        ("paper", "constant", 1),
        ("paper", "constant", 2),
    ]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 10
    first = records[0]
    assert first["commit"] == commit and first["record_version"] == accuracy.RECORD_VERSION
    assert first["command"].startswith("python benchmarks/accuracy.py --methods=baseline,paper")
    assert {"final", "picked", "oracle", "noisy_val_best", "date", "schedule"} <= set(first)

    # Rerun: everything is done, nothing trains.
    calls.clear()
    accuracy.run_grid(_args(out), runner=_fake_runner(calls), commit=commit)
    assert calls == [] and len(out.read_text().splitlines()) == 10

    table = accuracy.report(str(out))
    assert "commit(s): abc-dirty" in table.splitlines()[0]
    rows = [line for line in table.splitlines() if line.startswith("| symmetric")]
    assert rows == [
        "| symmetric 40% | baseline | cosine | 3 | 50.00 ± 0.00 | 80.00 ± 0.00 | 90.00 ± 0.00 |",
        "| symmetric 40% | paper | constant | 3 | 50.00 ± 0.00 | 78.00 ± 0.00 | 90.00 ± 0.00 |",
    ]


def test_report_of_every_schedule_marks_the_chosen_one(tmp_path):
    out = tmp_path / "acc.jsonl"
    accuracy.run_grid(_args(out), runner=_fake_runner([]), commit=None)
    rows = [
        line
        for line in accuracy.report(str(out), all_schedules=True).splitlines()
        if line.startswith("| symmetric")
    ]
    assert len(rows) == 6
    assert [row.split(" | ")[2] for row in rows if "*" in row] == ["cosine*", "constant*"]


def test_plot_draws_the_chosen_schedules(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "acc.jsonl"
    accuracy.run_grid(_args(out), runner=_fake_runner([]), commit=None)
    png = accuracy.plot(str(out), str(tmp_path / "figure" / "acc.png"))
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def _record(method, kind, rate, schedule, seed, final, picked, oracle=None, score=0.5):
    return {
        "record_version": accuracy.RECORD_VERSION,
        "method": method,
        "noise_type": kind,
        "noise_rate": rate,
        "schedule": schedule,
        "seed": seed,
        "final": final,
        "picked": picked,
        "oracle": max(final, picked) if oracle is None else oracle,
        "noisy_val_best": score,
    }


def test_goals_take_the_best_peer_per_measure_at_its_chosen_schedule(tmp_path):
    # Records name the default `metacleaner` as run; it is read as the version it meant.
    records = [
        # 40% symmetric: ahead of plain by 2 on both, but SCE is better on the pick.
        _record("metacleaner", "symmetric", 0.4, "constant", 0, 0.86, 0.85, oracle=0.86),
        _record("baseline", "symmetric", 0.4, "cosine", 0, 0.84, 0.83),
        _record("sce", "symmetric", 0.4, "constant", 0, 0.80, 0.845),
        # SCE's cosine run is better but its noisy validation did not choose it.
        _record("sce", "symmetric", 0.4, "cosine", 0, 0.99, 0.99, score=0.1),
        # Pair flips: 2 ahead on both measures, but the constant run memorises.
        _record("metacleaner", "pairflip", 0.45, "constant", 0, 0.70, 0.70, oracle=0.75),
        _record("sce", "pairflip", 0.45, "constant", 0, 0.68, 0.68),
        # No noise: 0.2 below plain training, within the slack.
        _record("metacleaner", "symmetric", 0.0, "constant", 0, 0.878, 0.878),
        _record("baseline", "symmetric", 0.0, "constant", 0, 0.88, 0.88),
    ]
    path = tmp_path / "acc.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    rows = {
        line.split(" | ")[0].lstrip("| "): line
        for line in accuracy.goals(str(path), "metacleaner_v1").splitlines()[2:]
    }
    sym40 = rows["ahead of the best peer by ≥ 1 at symmetric 40%"]
    assert "picked 85.00 (n=1) against sce 84.50 (n=1): +0.50" in sym40
    assert "final 86.00 (n=1) against baseline 84.00 (n=1): +2.00" in sym40
    assert sym40.endswith("| no |")
    assert rows["ahead of the best peer by ≥ 1 at pairflip 45%"].endswith("| yes |")
    assert rows["ahead of the best peer by ≥ 1 at symmetric 60%"].endswith("| not run | – |")
    assert rows["at 0% noise no more than 0.3 below plain training"].endswith("| yes |")
    constant = next(line for name, line in rows.items() if name.startswith("constant rate"))
    assert "pairflip 45%: -5.00 (n=1)" in constant and constant.endswith("| no |")
    assert {r["method"] for r in accuracy.read_records(str(path))} == {
        "metacleaner_v1",
        "baseline",
        "sce",
    }


def test_a_pinned_checkout_imports_its_own_library(tmp_path):
    # A worktree of another commit shares the installed (editable) package of the main
    # checkout: the benchmark must put its own checkout first, or it measures other code.
    checkout = tmp_path / "bench-abc"
    (checkout / "benchmarks").mkdir(parents=True)
    (checkout / "keras_metacleaner").mkdir()
    (checkout / "keras_metacleaner" / "__init__.py").write_text("PINNED = True\n")
    script = checkout / "benchmarks" / "accuracy.py"
    script.write_text((Path(ROOT) / "benchmarks" / "accuracy.py").read_text())
    code = (
        "import runpy, sys; runpy.run_path(sys.argv[1], run_name='not_main'); "
        "import keras_metacleaner; print(keras_metacleaner.__file__)"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == str(checkout / "keras_metacleaner" / "__init__.py")


def test_old_records_stay_readable_and_are_marked_legacy():
    path = os.path.join(ROOT, "docs", "data", "accuracy.jsonl")
    records = accuracy.read_records(path)
    assert records and all(r["legacy"] for r in records)
    assert {"baseline", "paper", "metacleaner_v1"} <= {r["method"] for r in records}
    assert all(r["picked"] is None and r["oracle"] is not None for r in records)
    table = accuracy.report(path, legacy=True)
    assert "legacy records" in table.splitlines()[0]
    assert "| symmetric 40% | baseline | constant |" in table


def test_bad_arguments_exit_2_before_any_work():
    completed = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "accuracy.py"), "--methods=nope"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 2 and "unknown method 'nope'" in completed.stderr


@pytest.fixture(scope="module")
def toy_npz(tmp_path_factory):
    from test_case import write_noisy_npz

    return write_noisy_npz(str(tmp_path_factory.mktemp("data") / "toy.npz"))


def test_a_real_tiny_run_goes_through_kmc_training_run(toy_npz, tmp_path):
    spec = {
        "dataset": f"npz:{toy_npz}",
        "epochs": 1,
        "train_size": 160,
        "validation_split": 0.2,
        "learning_rate": 0.02,
        "batch_size": 32,
        "method": "baseline",
        "noise_type": "symmetric",
        "noise_rate": 0.4,
        "schedule": "step",
        "seed": 0,
        "alpha_auroc_examples": 0,
    }
    record = accuracy.run_one((spec, str(tmp_path / "run"), None, "tiny"))
    config = record["config"]
    # The tool's settings: the first n images, validation after noise, selection on it.
    assert config["train_subset"] == 160 and config["validation_split"] == 0.2
    assert config["select_on"] == "noisy_val" and config["schedule"] == "step"
    assert record["picked"] is not None and record["picked_epoch"] == 0
    assert len(record["noisy_val_curve"]) == 1
    assert record["library"] == os.path.join(ROOT, "keras_metacleaner", "training")
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["final_test_accuracy"] == record["final"]
    assert not (tmp_path / "run.lock").exists(), "the run's lock outlives it"
    # A lock left by a process that is gone is taken over: the point trains again.
    (tmp_path / "run.lock").write_text(str(_dead_pid()))
    assert accuracy.run_one((spec, str(tmp_path / "run"), None, "tiny")) is not None
    assert not (tmp_path / "run.lock").exists()


def _dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(done.stdout)


def test_a_point_another_live_process_trains_is_skipped_untouched(tmp_path):
    # Two queues over one --out once trained the same point in one directory: the second
    # resumed from the first's backups and its record mixed both runs.
    run_dir = tmp_path / "runs" / "point"
    lock = tmp_path / "runs" / "point.lock"
    lock.parent.mkdir()
    lock.write_text(str(os.getpid()))  # this process, alive
    spec = {"method": "baseline", "noise_type": "symmetric", "noise_rate": 0.4}
    assert accuracy.run_one((spec, str(run_dir), None, "tiny")) is None
    assert not run_dir.exists() and lock.read_text() == str(os.getpid())
