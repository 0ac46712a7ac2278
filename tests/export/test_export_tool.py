"""tools/export.py: a training run's model_dir in, versioned SavedModels out."""

from __future__ import annotations

import json
import os
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


def test_export_tool_rejects_bad_flags_before_work(tmp_path):
    empty_run = tmp_path / "run"
    empty_run.mkdir()
    a_file = tmp_path / "exports"
    a_file.write_text("not a directory")

    missing = _export_tool(f"--model_dir={empty_run}", f"--export_dir={tmp_path / 'e'}")
    assert missing.returncode != 0 and "has no model.keras" in missing.stderr

    (empty_run / "model.keras").write_bytes(b"x")
    is_file = _export_tool(f"--model_dir={empty_run}", f"--export_dir={a_file}")
    assert is_file.returncode != 0 and "is a file, not a directory" in is_file.stderr

    both = _export_tool(
        f"--model_dir={empty_run}", f"--model={empty_run / 'model.keras'}", "--export_dir=x"
    )
    assert both.returncode != 0 and "exactly one of --model_dir and --model" in both.stderr
    assert not (tmp_path / "e").exists()
