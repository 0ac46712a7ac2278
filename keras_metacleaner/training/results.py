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
