import json
import os

import numpy as np
import pytest

from keras_metacleaner.training import results


def test_write_json_atomic_converts_numpy_and_nan(tmp_path):
    path = tmp_path / "sub" / "results.json"
    results.write_json_atomic(
        path,
        {
            "acc": np.float32(0.5),
            "n": np.int64(3),
            "arr": np.arange(2),
            "bad": float("nan"),
            "t": (1, 2),
        },
    )
    assert json.loads(path.read_text()) == {
        "acc": 0.5,
        "n": 3,
        "arr": [0, 1],
        "bad": None,
        "t": [1, 2],
    }
    assert os.listdir(path.parent) == ["results.json"]


def test_failed_write_keeps_previous_file_and_no_temp(tmp_path):
    path = tmp_path / "results.json"
    results.write_json_atomic(path, {"v": 1})
    with pytest.raises(TypeError):
        results.write_json_atomic(path, {"v": object()})
    assert json.loads(path.read_text()) == {"v": 1}
    assert os.listdir(tmp_path) == ["results.json"]


def test_read_json_names_the_file(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{oops")
    with pytest.raises(ValueError, match="x.json"):
        results.read_json(bad)
