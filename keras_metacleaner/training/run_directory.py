"""The run directory: what a training run may write, delete and resume in `model_dir`.

A tool deletes only files that a run writes (`RUN_FILES`), only in a directory
whose `run.json` says a run wrote it, and only after every check has passed.
The order of a run's writes makes every kill safe:

1. `check` reads the directory and decides `"fresh"` or `"resume"` (or refuses
   with a `ValueError`); it writes nothing.
2. `start` removes an earlier run's files (fresh start only), then writes
   `run.json` (the resolved configuration) atomically.
3. Training keeps `BackupAndRestore` state in `backup/<task>/`.
4. `finish` writes `results.json` first and removes `backup/` afterwards: a
   kill between the two leaves a finished run (refused without overwrite),
   never one that is trained again from scratch over the finished model.

This module uses the standard library only, so tools can check a directory
before TensorFlow is imported.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import time
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from keras_metacleaner.training.results import to_jsonable, write_json_atomic

#: Every name a run writes at the top of its `model_dir` (shell patterns; a
#: trailing "/" marks a directory). The one list: nothing else is ever deleted.
RUN_FILES = (
    "run.json",
    "results.json",
    "model.keras",
    "history*.json",
    "log*.csv",
    "logs/",
    "backup/",
    "curves.png",
    "best.weights.h5",
    "selected.weights.h5",
    # Temporary names of atomic writes (a kill can leave one behind).
    ".tmp-*",
    ".run.json.tmp*",
)
#: The run's configuration and the marker that a run owns the directory.
RUN_FILE = "run.json"
RESULTS_FILE = "results.json"
BACKUP_DIR = "backup"
#: `run.json["kind"]` of a directory a run wrote.
RUN_KIND = "keras_metacleaner.run"
#: Settings that may change when a run resumes (they change no trained number).
RESUME_NEUTRAL = ("overwrite", "verbose", "model_dir", "export_dir", "baseline_results")
#: Test-only: after writing results.json, `finish` waits until this file exists.
PAUSE_ENV = "KMC_TEST_PAUSE_AFTER_RESULTS"

_MAX_LISTED = 5


def is_run_file(name: str) -> bool:
    """Whether a top-level entry `name` of a model_dir is something a run writes.

    Args:
        name: a file or directory name (directories may end with "/").

    Returns:
        True when `name` matches `RUN_FILES`.

    Example:

    >>> is_run_file("history_finetune.json"), is_run_file("notes.txt")
    (True, False)
    """
    bare = name.rstrip("/")
    return any(fnmatch.fnmatchcase(bare, pattern.rstrip("/")) for pattern in RUN_FILES)


def _flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def config_differences(
    recorded: Mapping[str, Any], new: Mapping[str, Any], ignore: Iterable[str] = RESUME_NEUTRAL
) -> list[str]:
    """The settings that differ between two (nested) configurations.

    Args:
        recorded: the configuration `run.json` holds.
        new: the configuration of the new run.
        ignore: setting names (last component or dotted path) not compared.

    Returns:
        Sorted `"name: old -> new"` strings; empty when they agree.

    Example:

    >>> config_differences({"seed": 0, "opt": {"lr": 0.1}}, {"seed": 3, "opt": {"lr": 0.1}})
    ['seed: 0 -> 3']
    """
    ignore = set(ignore)
    old, cur = _flatten(to_jsonable(recorded)), _flatten(to_jsonable(new))
    missing = object()
    lines = []
    for key in sorted(set(old) | set(cur)):
        if key in ignore or key.rsplit(".", 1)[-1] in ignore:
            continue
        a, b = old.get(key, missing), cur.get(key, missing)
        if a != b:
            shown_a = "(unset)" if a is missing else json.dumps(a)
            shown_b = "(unset)" if b is missing else json.dumps(b)
            lines.append(f"{key}: {shown_a} -> {shown_b}")
    return lines


def _shorten(names: list[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else "")


def _remove(path: str) -> None:
    if os.path.islink(path) or not os.path.isdir(path):
        os.remove(path)
    else:
        shutil.rmtree(path)


def entry_inside(run_path: str, other: str | None) -> list[str]:
    """The top-level entry of `run_path` that holds `other`, if `other` lies inside it.

    A run may write its SavedModel export inside its own directory; that entry
    is then the run's too (`RunDirectory.check(extra_files=...)`).

    Args:
        run_path: the run directory.
        other: another output path (e.g. the export directory), or None.

    Returns:
        `[name]` of the entry of `run_path` that contains `other`, or `[]`.

    Example:

    >>> entry_inside("runs/a", "runs/a/export/1"), entry_inside("runs/a", "exports")
    (['export'], [])
    """
    if not other:
        return []
    inside = os.path.relpath(os.path.abspath(other), os.path.abspath(run_path))
    if inside == os.curdir or inside.startswith(os.pardir):
        return []
    return [inside.split(os.sep)[0]]


class RunDirectory:
    """A training run's `model_dir`: checks it, claims it, and closes it in a safe order.

    `check` refuses (with a `ValueError` naming `model_dir` and the reason) a
    path that cannot become a directory, a directory holding files no run
    wrote, run files without a `run.json` that says a run wrote them, a
    finished run (a `results.json`) without `overwrite`, and an interrupted
    run (a `backup/`) whose recorded configuration differs from the new one
    without `overwrite`. Nothing is written or deleted until `start`.

    Args:
        path: the model directory (need not exist).

    Example:

    >>> import tempfile
    >>> run_dir = RunDirectory(os.path.join(tempfile.mkdtemp(), "run"))
    >>> fresh = run_dir.check({"seed": 0}, overwrite=False)
    >>> run_dir.start({"seed": 0}, fresh=fresh == "fresh")
    >>> sorted(os.listdir(run_dir.path))
    ['run.json']
    >>> run_dir.finish({"test_accuracy": 0.5})
    >>> run_dir.check({"seed": 0}, overwrite=False)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: model_dir=...: holds a finished run (results.json); pass --overwrite ...
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._verdict: str | None = None
        self._extra: tuple[str, ...] = ()

    # ------------------------------------------------------------ reading
    def _fail(self, reason: str) -> ValueError:
        return ValueError(f"model_dir={self.path}: {reason}")

    def _entries(self) -> list[str]:
        return sorted(os.listdir(self.path))

    def _has(self, name: str) -> bool:
        return os.path.lexists(os.path.join(self.path, name))

    def recorded(self) -> dict | None:
        """The content of `run.json` when it says a run wrote the directory, else None.

        Returns:
            `{"kind", "config", "started", ...}` or None.

        Example:

        >>> RunDirectory("/nonexistent/run").recorded() is None
        True
        """
        try:
            with open(os.path.join(self.path, RUN_FILE)) as handle:
                record = json.load(handle)
        except (OSError, ValueError):
            return None
        if isinstance(record, dict) and record.get("kind") == RUN_KIND:
            return record
        return None

    def finished(self) -> bool:
        """Whether a finished run's `results.json` is there (a JSON object).

        A `backup/` beside it is what a kill between writing the results and
        removing the backup leaves; the run is finished all the same.

        Returns:
            True for a finished run.

        Example:

        >>> RunDirectory("/nonexistent/run").finished()
        False
        """
        try:
            with open(os.path.join(self.path, RESULTS_FILE)) as handle:
                return isinstance(json.load(handle), dict)
        except (OSError, ValueError):
            return False

    def _check_writable(self) -> None:
        path = os.path.abspath(self.path)
        if os.path.lexists(path) and not os.path.isdir(path):
            raise self._fail("exists and is not a directory; pass a directory for the run.")
        existing = path
        while not os.path.lexists(existing):
            parent = os.path.dirname(existing)
            if parent == existing:
                break
            existing = parent
        if not os.path.isdir(existing):
            raise self._fail(
                f"cannot be created: {existing} is a file, not a directory; pass a directory "
                "path whose parents are directories."
            )
        if not os.access(existing, os.W_OK | os.X_OK):
            raise self._fail(f"is not writable ({existing} refuses writes); pass another path.")

    # ------------------------------------------------------------- public
    def check(
        self,
        config: Mapping[str, Any],
        *,
        overwrite: bool,
        ignore: Iterable[str] = RESUME_NEUTRAL,
        extra_files: Iterable[str] = (),
    ) -> Literal["fresh", "resume"]:
        """Decides whether a run in this directory starts afresh or resumes; writes nothing.

        Args:
            config: the new run's resolved configuration (nested dicts allowed).
            overwrite: replace a finished run, or an interrupted one recorded
                under other settings (`start` then removes its files and its
                backup).
            ignore: settings that may differ on resume (see `RESUME_NEUTRAL`).
            extra_files: further top-level names that are tolerated and never
                deleted (e.g. an export directory the user put inside).

        Returns:
            `"fresh"` (nothing to keep: start from scratch) or `"resume"` (an
            interrupted run under the same settings: keep `backup/` and logs).

        Raises:
            ValueError: naming `model_dir` and the reason, as listed in the
                class docstring.

        Example:

        >>> RunDirectory("/nonexistent/run").check({}, overwrite=False)
        'fresh'
        """
        self._verdict = None
        self._extra = tuple(name.rstrip("/") for name in extra_files)
        self._check_writable()
        if not os.path.isdir(self.path):
            self._verdict = "fresh"
            return "fresh"
        entries = [name for name in self._entries() if name not in self._extra]
        foreign = [
            name + ("/" if os.path.isdir(os.path.join(self.path, name)) else "")
            for name in entries
            if not is_run_file(name)
        ]
        if foreign:
            raise self._fail(
                f"holds files that no training run writes ({_shorten(foreign)}); they are left "
                "untouched: pass an empty or new directory."
            )
        if not entries:
            self._verdict = "fresh"
            return "fresh"
        record = self.recorded()
        if record is None:
            raise self._fail(
                f"holds {_shorten(entries)} but no {RUN_FILE} of a keras_metacleaner run, so "
                "nothing there is deleted or resumed: move the files away or pass a new directory."
            )
        if self.finished():
            if not overwrite:
                raise self._fail(
                    f"holds a finished run ({RESULTS_FILE}); pass --overwrite to replace it, or "
                    "choose another directory."
                )
            self._verdict = "fresh"
            return "fresh"
        if self._has(BACKUP_DIR):
            differences = config_differences(record.get("config") or {}, config, ignore)
            if differences and not overwrite:
                raise self._fail(
                    "holds an interrupted run recorded under other settings "
                    f"({'; '.join(differences)}); rerun with the recorded settings to resume, "
                    "or pass --overwrite to start afresh."
                )
            verdict = "fresh" if differences else "resume"
            self._verdict = verdict
            return verdict
        # Started but killed before its first backup: nothing worth resuming.
        self._verdict = "fresh"
        return "fresh"

    def start(self, config: Mapping[str, Any], *, fresh: bool) -> None:
        """Claims the directory: removes an earlier run's files (fresh only), writes `run.json`.

        Call it only after `check` and every other validation of the run
        (flags, data) has passed: it is the first write.

        Args:
            config: the run's resolved configuration, recorded in `run.json`
                and compared on resume.
            fresh: True to start from scratch (every `RUN_FILES` entry is
                removed, `backup/` included); False to resume (`check`
                returned "resume"), which keeps everything.

        Raises:
            RuntimeError: `check` was not called first, or it said "fresh"
                and `fresh=False` was passed.

        Example:

        >>> import tempfile
        >>> run_dir = RunDirectory(os.path.join(tempfile.mkdtemp(), "r"))
        >>> run_dir.start({}, fresh=True)
        Traceback (most recent call last):
        ...
        RuntimeError: RunDirectory.start before check: call check(config, overwrite=...) first.
        """
        if self._verdict is None:
            raise RuntimeError(
                "RunDirectory.start before check: call check(config, overwrite=...) first."
            )
        if not fresh and self._verdict != "resume":
            raise RuntimeError(f"{self.path}: check said 'fresh'; there is nothing to resume.")
        os.makedirs(self.path, exist_ok=True)
        if fresh:
            for name in self._entries():
                if name not in self._extra and is_run_file(name):
                    _remove(os.path.join(self.path, name))
        record = self.recorded() if not fresh else None
        if record is None:
            record = {
                "kind": RUN_KIND,
                "config": to_jsonable(config),
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            write_json_atomic(os.path.join(self.path, RUN_FILE), record)
        self._verdict = None

    def backup_dir(self, task: str | int = "chief") -> str:
        """Where `keras.callbacks.BackupAndRestore` of one task keeps its state.

        Args:
            task: the task's id (e.g. "chief", "worker_1").

        Returns:
            `<model_dir>/backup/<task>`.

        Example:

        >>> RunDirectory("runs/a").backup_dir("worker_1")
        'runs/a/backup/worker_1'
        """
        return os.path.join(self.path, BACKUP_DIR, str(task))

    def finish(self, results: Mapping[str, Any] | None, *, task: str | int | None = None) -> None:
        """Closes the run: `results.json` first, `backup/` removed only afterwards.

        Args:
            results: the results record (written by the chief); None on
                other tasks, which only remove their own backup.
            task: remove only `backup/<task>` (and `backup/` once empty);
                None removes all of `backup/`.

        Example:

        >>> import tempfile
        >>> run_dir = RunDirectory(tempfile.mkdtemp())
        >>> run_dir.finish({"test_accuracy": 0.9})
        >>> run_dir.finished()
        True
        """
        if results is not None:
            write_json_atomic(os.path.join(self.path, RESULTS_FILE), results)
            _pause_for_tests()
        backup = os.path.join(self.path, BACKUP_DIR)
        if task is None:
            shutil.rmtree(backup, ignore_errors=True)
        else:
            shutil.rmtree(self.backup_dir(task), ignore_errors=True)
            try:
                os.rmdir(backup)
            except OSError:
                pass  # another task's backup is still there, or none at all


def _pause_for_tests() -> None:
    """Test-only window between results.json and the removal of backup/ (see `PAUSE_ENV`)."""
    release = os.environ.get(PAUSE_ENV)
    if not release:
        return
    deadline = time.monotonic() + 600
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.05)
