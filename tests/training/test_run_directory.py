"""RunDirectory: refuses foreign files, finished runs, resumes under other settings; safe order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from keras_metacleaner.training import run_directory
from keras_metacleaner.training.run_directory import RUN_FILES, RunDirectory, is_run_file

CONFIG = {"method": "metacleaner", "data": {"noise_rate": 0.2}, "seed": 0, "verbose": 0}


def _tree(root) -> dict[str, bytes | None]:
    """Every path under `root` with its content (None for directories)."""
    tree = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs:
            tree[os.path.relpath(os.path.join(directory, name), root)] = None
        for name in files:
            path = os.path.join(directory, name)
            with open(path, "rb") as handle:
                tree[os.path.relpath(path, root)] = handle.read()
    return tree


def _started(path, config=CONFIG) -> RunDirectory:
    run_dir = RunDirectory(path)
    run_dir.check(config, overwrite=False)
    run_dir.start(config, fresh=True)
    return run_dir


def _interrupted(path, config=CONFIG) -> RunDirectory:
    run_dir = _started(path, config)
    backup = run_dir.backup_dir("chief")
    os.makedirs(os.path.join(backup, "train"))
    with open(os.path.join(backup, "train", "latest.weights.h5"), "wb") as handle:
        handle.write(b"weights")
    with open(os.path.join(path, "log.csv"), "w") as handle:
        handle.write("epoch,loss\n0,1.0\n")
    return run_dir


def test_run_files_is_the_one_list_of_what_a_run_writes():
    for name in (
        "results.json",
        "model.keras",
        "history.json",
        "history_finetune.json",
        "log.csv",
        "log_finetune.csv",
        "logs",
        "backup",
        "curves.png",
        "run.json",
        "best.weights.h5",
        "selected.weights.h5",
        ".tmp-model.keras",
        ".tmp-abc.json",
    ):
        assert is_run_file(name), name
    for name in ("notes.txt", "model.h5", "mine.weights.h5", "data.npz", "export", "results"):
        assert not is_run_file(name), name
    assert "run.json" in RUN_FILES and "backup/" in RUN_FILES


def test_missing_and_empty_directories_start_fresh_and_check_writes_nothing(tmp_path):
    assert RunDirectory(tmp_path / "new" / "run").check(CONFIG, overwrite=False) == "fresh"
    assert not (tmp_path / "new").exists()
    (tmp_path / "empty").mkdir()
    assert RunDirectory(tmp_path / "empty").check(CONFIG, overwrite=True) == "fresh"
    assert os.listdir(tmp_path / "empty") == []


def test_start_writes_run_json_with_the_configuration(tmp_path):
    run_dir = _started(tmp_path / "run")
    assert os.listdir(run_dir.path) == ["run.json"]
    record = run_dir.recorded()
    assert record["kind"] == run_directory.RUN_KIND
    assert record["config"] == CONFIG


def test_start_before_check_is_refused(tmp_path):
    with pytest.raises(RuntimeError, match="before check"):
        RunDirectory(tmp_path / "run").start(CONFIG, fresh=True)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize(
    "files",
    [
        {"notes.txt": b"mine"},
        {"model.keras": b"my model", "log.csv": b"mine"},  # run names, but no run.json
        {"run.json": b'{"kind": "something else"}', "model.keras": b"x"},
        {"run.json": b"not json", "log.csv": b"x"},
        {"results.json": b"{}", "run.json": b"{}", "sub/data.npz": b"x"},
    ],
    ids=["foreign", "no-run-json", "other-kind", "bad-run-json", "foreign-dir"],
)
def test_foreign_files_are_refused_and_never_deleted(tmp_path, files, overwrite):
    root = tmp_path / "run"
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    before = _tree(root)
    with pytest.raises(ValueError, match=rf"^model_dir={root}: holds ") as error:
        RunDirectory(root).check(CONFIG, overwrite=overwrite)
    assert "\n" not in str(error.value)
    assert _tree(root) == before


def test_foreign_file_message_names_the_files(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "model.keras").write_text("x")
    with pytest.raises(ValueError, match=r"no training run writes \(notes.txt\)"):
        RunDirectory(tmp_path).check(CONFIG, overwrite=True)


def test_extra_files_are_tolerated_and_kept(tmp_path):
    run_dir = _started(tmp_path)
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "1").mkdir()
    run_dir.finish({"test_accuracy": 0.5})
    with pytest.raises(ValueError, match="export/"):
        run_dir.check(CONFIG, overwrite=True)
    assert run_dir.check(CONFIG, overwrite=True, extra_files=["export"]) == "fresh"
    run_dir.start(CONFIG, fresh=True)
    assert sorted(os.listdir(tmp_path)) == ["export", "run.json"]


def test_finished_run_is_refused_without_overwrite_and_replaced_with_it(tmp_path):
    run_dir = _started(tmp_path)
    (tmp_path / "model.keras").write_bytes(b"finished model")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "events").write_bytes(b"x")
    run_dir.finish({"test_accuracy": 0.5})
    before = _tree(tmp_path)
    with pytest.raises(ValueError, match="holds a finished run .results.json.; pass --overwrite"):
        run_dir.check(CONFIG, overwrite=False)
    assert _tree(tmp_path) == before
    assert run_dir.check({**CONFIG, "seed": 9}, overwrite=True) == "fresh"
    assert _tree(tmp_path) == before, "check must not write"
    run_dir.start({**CONFIG, "seed": 9}, fresh=True)
    assert os.listdir(tmp_path) == ["run.json"]
    assert run_dir.recorded()["config"]["seed"] == 9


def test_interrupted_run_resumes_under_the_same_settings(tmp_path):
    run_dir = _interrupted(tmp_path)
    before = _tree(tmp_path)
    # Settings that change no trained number may differ.
    assert run_dir.check({**CONFIG, "verbose": 2, "overwrite": True}, overwrite=False) == "resume"
    run_dir.start(CONFIG, fresh=False)
    assert _tree(tmp_path) == before


def test_interrupted_run_under_other_settings_is_refused_listing_them(tmp_path):
    run_dir = _interrupted(tmp_path)
    before = _tree(tmp_path)
    new = {**CONFIG, "seed": 3, "data": {"noise_rate": 0.6}, "method": "paper"}
    with pytest.raises(ValueError) as error:
        run_dir.check(new, overwrite=False)
    message = str(error.value)
    assert "interrupted run recorded under other settings" in message
    assert 'data.noise_rate: 0.2 -> 0.6; method: "metacleaner" -> "paper"; seed: 0 -> 3' in message
    assert "--overwrite" in message and "\n" not in message
    assert _tree(tmp_path) == before


def test_overwrite_of_an_interrupted_run_resets_the_backup(tmp_path):
    run_dir = _interrupted(tmp_path)
    new = {**CONFIG, "seed": 3}
    assert run_dir.check(new, overwrite=True) == "fresh"
    run_dir.start(new, fresh=True)
    assert os.listdir(tmp_path) == ["run.json"]
    assert run_dir.recorded()["config"]["seed"] == 3


def test_started_run_without_backup_starts_afresh(tmp_path):
    run_dir = _started(tmp_path)
    (tmp_path / "history.json").write_text("[]")
    assert run_dir.check({**CONFIG, "seed": 5}, overwrite=False) == "fresh"
    run_dir.start({**CONFIG, "seed": 5}, fresh=True)
    assert os.listdir(tmp_path) == ["run.json"]


def test_start_deletes_only_listed_files(tmp_path):
    run_dir = _interrupted(tmp_path)
    for name in ("curves.png", "history_finetune.json", ".tmp-model.keras", "selected.weights.h5"):
        (tmp_path / name).write_bytes(b"x")
    assert run_dir.check(CONFIG, overwrite=True, extra_files=["keep.txt"]) == "resume"
    (tmp_path / "keep.txt").write_text("user")
    run_dir.start(CONFIG, fresh=True)
    assert sorted(os.listdir(tmp_path)) == ["keep.txt", "run.json"]


@pytest.mark.parametrize("where", ["is-file", "under-file", "deep-under-file"])
def test_unusable_paths_are_refused_before_anything_is_written(tmp_path, where):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    path = {
        "is-file": a_file,
        "under-file": a_file / "run",
        "deep-under-file": a_file / "x" / "run",
    }[where]
    with pytest.raises(ValueError, match=rf"^model_dir={path}: .*(not a directory|is a file)"):
        RunDirectory(path).check(CONFIG, overwrite=True)
    assert os.listdir(tmp_path) == ["a_file"] and a_file.read_text() == "x"


def test_finish_writes_results_before_removing_the_backup(tmp_path, monkeypatch):
    run_dir = _interrupted(tmp_path)
    seen = []
    real_rmtree = run_directory.shutil.rmtree

    def rmtree(path, *args, **kwargs):
        seen.append((os.path.basename(path), (tmp_path / "results.json").exists()))
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(run_directory.shutil, "rmtree", rmtree)
    run_dir.finish({"test_accuracy": 0.75})
    assert seen == [("backup", True)]
    assert json.loads((tmp_path / "results.json").read_text()) == {"test_accuracy": 0.75}
    assert sorted(os.listdir(tmp_path)) == ["log.csv", "results.json", "run.json"]


def test_finish_of_one_task_keeps_the_others_backup(tmp_path):
    run_dir = _started(tmp_path)
    for task in ("chief", "worker_1"):
        os.makedirs(run_dir.backup_dir(task))
    run_dir.finish(None, task="worker_1")
    assert os.listdir(tmp_path / "backup") == ["chief"]
    assert not (tmp_path / "results.json").exists()
    run_dir.finish({"x": 1}, task="chief")
    assert sorted(os.listdir(tmp_path)) == ["results.json", "run.json"]


def test_a_kill_between_results_and_backup_removal_leaves_a_finished_run(tmp_path):
    """The pause hook holds `finish` in the window; a SIGKILL there must not lose the run."""
    run_dir = _interrupted(tmp_path / "run")
    release = tmp_path / "release"
    # Loaded by its path: the module needs the standard library only (no TensorFlow start-up).
    script = (
        "import importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('rd', sys.argv[2])\n"
        "rd = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(rd)\n"
        "rd.RunDirectory(sys.argv[1]).finish({'test_accuracy': 0.5})\n"
    )
    env = dict(os.environ, **{run_directory.PAUSE_ENV: str(release)})
    proc = subprocess.Popen(
        [sys.executable, "-c", script, run_dir.path, run_directory.__file__], env=env
    )
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "run" / "results.json").exists():
            assert proc.poll() is None, "finish ended without pausing"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.2)
        assert proc.poll() is None, "finish did not wait in the window"
        proc.kill()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (tmp_path / "run" / "backup").is_dir()
    with pytest.raises(ValueError, match="holds a finished run"):
        RunDirectory(tmp_path / "run").check(CONFIG, overwrite=False)
    # --overwrite starts afresh and resets the stale backup too.
    fresh = RunDirectory(tmp_path / "run")
    assert fresh.check(CONFIG, overwrite=True) == "fresh"
    fresh.start(CONFIG, fresh=True)
    assert os.listdir(tmp_path / "run") == ["run.json"]


def test_config_differences_normalises_values():
    import numpy as np

    assert run_directory.config_differences({"a": [1, 2]}, {"a": (1, 2)}) == []
    assert run_directory.config_differences({"a": 4}, {"a": np.int64(4)}) == []
    assert run_directory.config_differences({"a": 1}, {"b": 1}) == [
        "a: 1 -> (unset)",
        "b: (unset) -> 1",
    ]
    assert run_directory.config_differences({"x": {"verbose": 1}}, {"x": {"verbose": 2}}) == []
