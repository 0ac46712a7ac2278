"""The README's `model.fit` example runs as written."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _readme_python_blocks():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)


def test_readme_has_one_short_example():
    blocks = _readme_python_blocks()
    assert len(blocks) == 1
    assert len(blocks[0].strip().splitlines()) <= 22


@pytest.mark.slow
def test_readme_example_runs_as_written(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-c", _readme_python_blocks()[0]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "'accuracy'" in completed.stdout
    versions = os.listdir(tmp_path / "exports" / "readme")
    assert versions == ["1"]
    assert os.path.isfile(tmp_path / "exports" / "readme" / "1" / "saved_model.pb")


def test_readme_example_groups_on_the_fast_path(monkeypatch):
    # The data lines of the example (up to the model), run with the streaming path disabled:
    # a `.take` or `.prefetch` that dropped the random-access view would fail here.
    from keras_metacleaner.data import grouping

    code = _readme_python_blocks()[0]
    data_lines = code[: code.index("backbone =")]
    calls = []

    def streaming_path(*args, **kwargs):
        calls.append(args)
        raise AssertionError("the README example fell back to the streaming path")

    monkeypatch.setattr(grouping, "_streaming_path", streaming_path)
    namespace = {}
    exec(compile(data_lines, "README.md", "exec"), namespace)
    assert not calls
    assert namespace["train"].view is not None
    assert int(namespace["groups"].cardinality()) == 4096 // 4 // 32
