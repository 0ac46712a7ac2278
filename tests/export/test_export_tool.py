"""tools/export.py: a training run's model_dir in, versioned SavedModels out."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import tensorflow as tf
from export_helpers import keras_probabilities, repo_root

from keras_metacleaner.data.sources.fashion_mnist import CLASS_NAMES


def _export_tool(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [sys.executable, os.path.join(repo_root(), "tools", "export.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_export_tool_from_model_dir_and_from_files(trained_model, sample_images, tmp_path):
    model_dir = tmp_path / "run"
    model_dir.mkdir()
    trained_model.save(model_dir / "model.keras")
    (model_dir / "results.json").write_text(json.dumps({"class_names": CLASS_NAMES}))
    base = tmp_path / "exports" / "fashion_mnist"

    first = _export_tool(f"--model_dir={model_dir}", f"--export_dir={base}")
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stdout.strip().splitlines()[-1] == str(base / "1")

    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"c{i}" for i in range(10)) + "\n")
    second = _export_tool(
        f"--model={model_dir / 'model.keras'}",
        f"--class_names_file={names}",
        f"--export_dir={base}",
        "--version=5",
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert sorted(os.listdir(base)) == ["1", "5"]

    images, _ = sample_images
    expected = keras_probabilities(trained_model, images)
    for version, class_names in (("1", CLASS_NAMES), ("5", [f"c{i}" for i in range(10)])):
        loaded = tf.saved_model.load(str(base / version))
        result = loaded.signatures["serving_uint8"](images=tf.constant(images))
        np.testing.assert_allclose(result["probabilities"].numpy(), expected, atol=1e-5)
        assert [n.decode() for n in result["class_name"].numpy()] == [
            class_names[i] for i in expected.argmax(-1)
        ]


def _tree(root) -> list[str]:
    return sorted(
        os.path.relpath(os.path.join(d, n), root) for d, ds, fs in os.walk(root) for n in ds + fs
    )


# What TensorFlow's C++ runtime prints on import, whatever TF_CPP_MIN_LOG_LEVEL says.
_TF_NOISE = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages before absl|To enable the)")


def _usage_error(done: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit 2, no traceback, and ONE error line on stderr holding every fragment."""
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line and not _TF_NOISE.match(line)]
    errors = [line for line in lines if line.startswith("export.py: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], done.stderr[-2000:]
    assert set(lines[:-1]) <= {"warning: no class names found; class_name outputs will be ids."}
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def test_export_tool_rejects_bad_flags_before_work(tmp_path):
    empty_run = tmp_path / "run"
    empty_run.mkdir()
    a_file = tmp_path / "exports"
    a_file.write_text("not a directory")
    base = tmp_path / "e"

    _usage_error(
        _export_tool(f"--model_dir={empty_run}", f"--export_dir={base}"), "has no model.keras"
    )
    (empty_run / "model.keras").write_bytes(b"x")
    _usage_error(
        _export_tool(f"--model_dir={empty_run}", f"--export_dir={a_file}"),
        f"--export_dir={a_file} is a file",
    )
    _usage_error(
        _export_tool(f"--model_dir={empty_run}", f"--export_dir={a_file / 'sub' / 'base'}"),
        f"is under the file {a_file}",
    )
    _usage_error(
        _export_tool(
            f"--model_dir={empty_run}", f"--model={empty_run / 'model.keras'}", "--export_dir=x"
        ),
        "exactly one of --model_dir and --model",
    )
    _usage_error(_export_tool(f"--model_dir={empty_run}"), "--export_dir is required")
    _usage_error(_export_tool("--version=abc", "--export_dir=x"), "--version=abc")
    _usage_error(_export_tool("--nosuchflag"), "nosuchflag")
    _usage_error(_export_tool(f"--model_dir={empty_run}", "--export_dir=x", "extra"), "extra")
    _usage_error(
        _export_tool(f"--model_dir={empty_run}", f"--export_dir={base}", "--version=-1"),
        "--version=-1",
    )
    names = tmp_path / "names.json"
    for content, fragment in (
        ('["a", "b\\nc"]', "class name 1 is 'b\\nc'"),
        ('["a", ""]', "class name 1 is ''"),
        ("[1, 2]", "expected a list of class names"),
        ("{", "not valid JSON"),
    ):
        names.write_text(content)
        _usage_error(
            _export_tool(
                f"--model_dir={empty_run}", f"--export_dir={base}", f"--class_names_file={names}"
            ),
            f"--class_names_file={names}: ",
            fragment,
        )
    (empty_run / "results.json").write_text('{"class_names": ["ok", " "]}')
    _usage_error(
        _export_tool(f"--model_dir={empty_run}", f"--export_dir={base}"),
        f"--model_dir={empty_run} ({empty_run / 'results.json'}): class name 1",
    )
    assert not base.exists() and not (tmp_path / "x").exists()
    assert _tree(tmp_path) == [
        "exports",
        "names.json",
        "run",
        "run/model.keras",
        "run/results.json",
    ]


def test_export_tool_refuses_an_existing_version_and_a_file_that_is_no_model(
    trained_model, tmp_path
):
    model_path = tmp_path / "model.keras"
    trained_model.save(model_path)
    base = tmp_path / "exports"
    (base / "3" / "variables").mkdir(parents=True)
    (base / "3" / "saved_model.pb").write_bytes(b"version 3")
    before = _tree(base)
    _usage_error(
        _export_tool(f"--model={model_path}", f"--export_dir={base}", "--version=3"),
        f"--version=3: {base / '3'} already exists and is never overwritten",
    )
    not_a_model = tmp_path / "broken.keras"
    not_a_model.write_bytes(b"not a zip")
    _usage_error(
        _export_tool(f"--model={not_a_model}", f"--export_dir={base}"),
        f"--model={not_a_model}: cannot load",
    )
    names = tmp_path / "names.txt"
    names.write_text("a\nb\n")
    _usage_error(
        _export_tool(
            f"--model={model_path}", f"--export_dir={base}", f"--class_names_file={names}"
        ),
        "class_names has 2 entries but the model has 10 classes",
    )
    assert _tree(base) == before
