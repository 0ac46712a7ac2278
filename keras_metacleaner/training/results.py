"""results.json: the record a training run leaves, written atomically."""

from __future__ import annotations

import json
import math
import os
import tempfile
from typing import Any

import numpy as np


def to_jsonable(value: Any) -> Any:
    """Converts NumPy scalars/arrays, tuples and non-finite floats to plain JSON.

    Non-finite floats become `None` so the file stays strict JSON (readable by
    `jq`, JavaScript and `json.loads(..., parse_constant=...)`-free code).

    Args:
        value: any nesting of dicts, lists, tuples, NumPy values and scalars.

    Returns:
        The same structure made of dict, list, str, int, float, bool and None.

    Example:

    >>> to_jsonable({"a": np.float32(0.5), "b": (1, np.int64(2)), "c": float("nan")})
    {'a': 0.5, 'b': [1, 2], 'c': None}
    """
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json_atomic(path: str | os.PathLike, data: Any) -> str:
    """Writes `data` as JSON to `path` through a temporary file and a rename.

    A reader never sees a half-written file, and a run killed mid-write leaves
    the previous version in place.

    Args:
        path: destination file; its directory is created if missing.
        data: a JSON-able structure (NumPy values are converted).

    Returns:
        `path` as a string.

    Example:

    >>> import tempfile, os
    >>> p = write_json_atomic(os.path.join(tempfile.mkdtemp(), "r.json"), {"x": 1})
    >>> open(p).read().strip()
    '{\\n  "x": 1\\n}'
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(to_jsonable(data), f, indent=2, allow_nan=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def read_json(path: str | os.PathLike) -> Any:
    """Reads a JSON file, naming the file in the error when it is not JSON.

    Args:
        path: the file.

    Returns:
        The parsed content.

    Example:

    >>> import tempfile, os
    >>> read_json(write_json_atomic(os.path.join(tempfile.mkdtemp(), "r.json"), [1]))
    [1]
    """
    with open(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{os.fspath(path)!r} is not valid JSON: {e}") from None


#: The record a finished run leaves in its model_dir.
RESULTS_FILE = "results.json"


def git_commit(path: str | os.PathLike | None = None) -> dict | None:
    """The git commit of the checkout holding `path` and whether its tree is dirty.

    Read from git itself (`git rev-parse HEAD`, `git status --porcelain`), so
    a record says which code produced it.

    Args:
        path: a file or directory inside the checkout (default: this package).

    Returns:
        `{"sha": str, "dirty": bool}`, or None outside a git checkout (an
        installed package) or without git.

    Example:

    >>> record = git_commit()
    >>> record is None or sorted(record)
    ['dirty', 'sha']
    """
    import subprocess

    directory = os.fspath(path or os.path.dirname(os.path.abspath(__file__)))
    if not os.path.isdir(directory):
        directory = os.path.dirname(directory)
    try:
        sha = subprocess.run(
            ["git", "-C", directory, "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", directory, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"sha": sha, "dirty": bool(status.strip())}


def accuracy_summary(
    history: list[dict],
    final_test_accuracy: float,
    selected_test_accuracy: float,
    select_on: str,
    selected_epoch: int | None,
    validation_key: str | None,
) -> dict:
    """The accuracies of results.json: final, picked, oracle and the kept one.

    Args:
        history: the run's epoch rows (`val_accuracy` is the test set).
        final_test_accuracy: the last epoch's weights on the test set.
        selected_test_accuracy: the kept weights on the test set.
        select_on: `"last"` or `"noisy_val"`.
        selected_epoch: the epoch whose weights were kept (noisy_val).
        validation_key: the history key of the validation score, or None.

    Returns:
        dict with `test_accuracy` (the kept weights), `final_test_accuracy`,
        `picked_test_accuracy` (test accuracy at the best-validation epoch of
        the last stage; None without validation), `oracle_best_test_accuracy`
        (the best test accuracy of any epoch: shown beside, never a choice)
        and `best_test_accuracy` (the same, its old name).

    Example:

    >>> rows = [{"stage": "train", "epoch": 0, "val_accuracy": 0.5, "noisy_val_accuracy": 0.4},
    ...         {"stage": "train", "epoch": 1, "val_accuracy": 0.6, "noisy_val_accuracy": 0.3}]
    >>> s = accuracy_summary(rows, 0.6, 0.6, "last", None, "noisy_val_accuracy")
    >>> s["picked_test_accuracy"], s["oracle_best_test_accuracy"]
    (0.5, 0.6)
    """
    per_epoch = [e["val_accuracy"] for e in history if e.get("val_accuracy") is not None]
    oracle = float(max(per_epoch + [final_test_accuracy]))
    picked = None
    if select_on == "noisy_val":
        picked = selected_test_accuracy
    elif validation_key and history:
        stage = history[-1]["stage"]
        rows = [e for e in history if e["stage"] == stage and e.get(validation_key) is not None]
        if rows:
            # The first epoch reaching the best score, as the selection picks it.
            best = max(rows, key=lambda e: (e[validation_key], -e["epoch"]))
            picked = best.get("val_accuracy")
    return {
        "test_accuracy": selected_test_accuracy,
        "final_test_accuracy": final_test_accuracy,
        "picked_test_accuracy": picked,
        "oracle_best_test_accuracy": oracle,
        "best_test_accuracy": oracle,
    }
