"""The REST request the client sends, decoded as TF Serving does, and the client tool."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from export_helpers import keras_probabilities, repo_root
from fake_serving import FakeTFServing, decode_instances, predict

import keras_metacleaner as kmc
from keras_metacleaner.data.sources.fashion_mnist import CLASS_NAMES


def _pngs(images) -> list[bytes]:
    return [tf.io.encode_png(image).numpy() for image in images]


def _png_files(images, directory) -> tuple[list[str], str]:
    """`images` written as item<i>.png under `directory`, and the path of a broken PNG."""
    files = []
    for i, png in enumerate(_pngs(images)):
        files.append(str(directory / f"item{i}.png"))
        with open(files[-1], "wb") as handle:
            handle.write(png)
    bad = directory / "broken.png"
    bad.write_bytes(b"this is not a png")
    return files, str(bad)


def test_predict_url():
    assert (
        kmc.export.predict_url("localhost", "fashion_mnist")
        == "http://localhost:8501/v1/models/fashion_mnist:predict"
    )
    assert (
        kmc.export.predict_url("10.0.0.2", "m", port=9000, version=3)
        == "http://10.0.0.2:9000/v1/models/m/versions/3:predict"
    )
    with pytest.raises(ValueError, match="model_name"):
        kmc.export.predict_url("localhost", "a/b")


def test_bytes_request_is_tf_serving_row_format(sample_images):
    pngs = _pngs(sample_images[0][:2])
    body = json.loads(kmc.export.encode_request(kmc.export.bytes_request(pngs)))
    assert body["signature_name"] == "serving_bytes"
    assert [list(instance) for instance in body["instances"]] == [["image_bytes"]] * 2
    for instance, png in zip(body["instances"], pngs):
        assert list(instance["image_bytes"]) == ["b64"]
        assert base64.b64decode(instance["image_bytes"]["b64"]) == png
    with pytest.raises(ValueError, match=r"images\[1\]"):
        kmc.export.bytes_request([pngs[0], b""])
    with pytest.raises(ValueError, match="at least one"):
        kmc.export.bytes_request([])


def test_client_body_through_the_loaded_signature(trained_model, loaded, sample_images):
    """Exactly the bytes the client would POST, b64-decoded as TF Serving does."""
    images, _ = sample_images
    wire = kmc.export.encode_request(kmc.export.bytes_request(_pngs(images)))
    body = json.loads(wire.decode("utf-8"))
    signature = loaded.signatures[body["signature_name"]]
    inputs = decode_instances(body, signature)
    assert inputs["image_bytes"].dtype == tf.string and inputs["image_bytes"].shape == (8,)
    outputs = signature(**inputs)
    expected = keras_probabilities(trained_model, images)
    np.testing.assert_allclose(outputs["probabilities"].numpy(), expected, atol=1e-5)

    predictions = kmc.export.parse_predictions(json.dumps(predict(loaded, body)))
    assert [p["class_name"] for p in predictions] == [CLASS_NAMES[i] for i in expected.argmax(-1)]
    np.testing.assert_allclose([p["probabilities"] for p in predictions], expected, atol=1e-5)


def test_pixels_request_through_serving_default(trained_model, loaded, sample_images):
    images, _ = sample_images
    body = json.loads(kmc.export.encode_request(kmc.export.pixels_request(images[:3])))
    assert body["signature_name"] == "serving_default"
    answer = predict(loaded, body)
    np.testing.assert_allclose(
        [p["probabilities"] for p in answer["predictions"]],
        keras_probabilities(trained_model, images[:3]),
        atol=1e-5,
    )


def test_parse_predictions_errors():
    with pytest.raises(RuntimeError, match="answered with an error: boom"):
        kmc.export.parse_predictions(b'{"error": "boom"}')
    with pytest.raises(ValueError, match="not JSON"):
        kmc.export.parse_predictions("<html>")
    with pytest.raises(ValueError, match="no 'predictions'"):
        kmc.export.parse_predictions({"outputs": []})


def _run_client(port: int, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [
            sys.executable,
            os.path.join(repo_root(), "tools", "serving_client.py"),
            "--host=127.0.0.1",
            f"--port={port}",
            "--model_name=fashion_mnist",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_serving_client_against_a_loopback_tf_serving(
    trained_model, exported, sample_images, tmp_path
):
    images, _ = sample_images
    files, bad = _png_files(images[:3], tmp_path)
    expected = keras_probabilities(trained_model, images[:3])

    with FakeTFServing(exported[0], "fashion_mnist") as server:
        run = _run_client(server.port, *files)
        assert run.returncode == 0, run.stderr[-3000:]
        lines = [line.split("\t") for line in run.stdout.strip().splitlines()]
        assert [line[0] for line in lines] == files
        assert [line[1] for line in lines] == [CLASS_NAMES[i] for i in expected.argmax(-1)]
        assert [int(line[2]) for line in lines] == expected.argmax(-1).tolist()
        np.testing.assert_allclose([float(line[3]) for line in lines], expected.max(-1), atol=1e-4)
        # What arrived is the library's body, byte for byte in meaning.
        sent = [open(f, "rb").read() for f in files]
        assert server.requests[-1] == kmc.export.bytes_request(sent)

        failed = _run_client(server.port, files[0], bad)
        assert failed.returncode != 0
        assert "HTTP 400" in failed.stderr and "image_bytes[1]" in failed.stderr

    missing = _run_client(1, str(tmp_path / "nope.png"))
    assert missing.returncode != 0 and "does not exist" in missing.stderr


# Runs the client as __main__, then reports which heavy packages the run imported.
_CLIENT_THEN_MODULES = """
import json, runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
    code = 0
except SystemExit as exit:
    code = exit.code
heavy = {"tensorflow", "keras", "keras_metacleaner"}
print("imported: " + json.dumps(sorted(heavy & {m.split(".")[0] for m in sys.modules})))
sys.exit(code)
"""


def _run_client_reporting_modules(client: str, *args: str, cwd, **env: str):
    return subprocess.run(
        [sys.executable, "-c", _CLIENT_THEN_MODULES, client, *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=dict(os.environ, **env),
    )


def test_rest_client_imports_neither_tensorflow_nor_the_package(exported, sample_images, tmp_path):
    """A REST request needs only the standard library and absl: no TF start-up, no TF install."""
    files, _ = _png_files(sample_images[0][:2], tmp_path)
    with FakeTFServing(exported[0], "fashion_mnist") as server:
        run = _run_client_reporting_modules(
            os.path.join(repo_root(), "tools", "serving_client.py"),
            "--host=127.0.0.1",
            f"--port={server.port}",
            "--model_name=fashion_mnist",
            *files,
            cwd=tmp_path,
        )
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.strip().splitlines()
    # The request really went through, so the module check covers a whole REST call.
    assert [line.split("\t")[0] for line in lines[:-1]] == files
    assert server.requests, "the client sent nothing"
    assert lines[-1] == "imported: []"


def test_client_copied_out_of_the_checkout_finds_the_installed_rest(tmp_path):
    """Away from the checkout the client loads rest.py from the package, still not importing it."""
    client = tmp_path / "serving_client.py"
    client.write_bytes(open(os.path.join(repo_root(), "tools", "serving_client.py"), "rb").read())
    # The package is importable (as when pip-installed) but tools/../keras_metacleaner is not there.
    run = _run_client_reporting_modules(str(client), "--help", cwd=tmp_path, PYTHONPATH=repo_root())
    assert "cannot find" not in run.stderr, run.stderr[-3000:]
    assert "--protocol" in run.stdout + run.stderr
    assert run.stdout.strip().splitlines()[-1] == "imported: []"


def test_serving_client_grpc_against_a_loopback_prediction_service(
    trained_model, exported, sample_images, tmp_path
):
    pytest.importorskip("tensorflow_serving.apis")
    from fake_serving import FakeTFServingGrpc

    images, _ = sample_images
    files, bad = _png_files(images[:2], tmp_path)
    expected = keras_probabilities(trained_model, images[:2])

    with FakeTFServingGrpc(exported[0], "fashion_mnist") as server:
        run = _run_client(server.port, "--protocol=grpc", *files)
        assert run.returncode == 0, run.stderr[-3000:]
        lines = [line.split("\t") for line in run.stdout.strip().splitlines()]
        assert [line[1] for line in lines] == [CLASS_NAMES[i] for i in expected.argmax(-1)]
        np.testing.assert_allclose([float(line[3]) for line in lines], expected.max(-1), atol=1e-4)

        failed = _run_client(server.port, "--protocol=grpc", files[0], bad)
        assert failed.returncode != 0
        assert "INVALID_ARGUMENT" in failed.stderr and "image_bytes[1]" in failed.stderr
