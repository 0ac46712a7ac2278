"""export_for_serving: layout, no cleaner variables, loads and agrees without our package."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from export_helpers import keras_probabilities

import keras_metacleaner as kmc
from keras_metacleaner.data.sources.fashion_mnist import CLASS_NAMES


def test_version_layout_and_class_names_asset(exported):
    path, base = exported
    assert os.path.dirname(path) == os.path.abspath(base)
    assert os.path.basename(path).isdigit()
    assert os.path.isfile(os.path.join(path, "saved_model.pb"))
    assert os.path.isfile(os.path.join(path, "variables", "variables.index"))
    with open(os.path.join(path, "assets", kmc.export.CLASS_NAMES_ASSET), encoding="utf-8") as f:
        assert f.read().splitlines() == CLASS_NAMES
    # Nothing but versions in the base: TF Serving polls it.
    assert all(name.isdigit() for name in os.listdir(base))


def _variable_shapes(variables) -> collections.Counter:
    return collections.Counter(tuple(int(d) for d in v.shape) for v in variables)


def test_export_holds_no_metacleaner_variables(trained_model, exported, loaded):
    cleaner_variables = trained_model.cleaner.weights
    assert cleaner_variables, "the test needs a cleaner with variables to be meaningful"
    classifier = trained_model.inference_model()

    saved_names = sorted(v.name for v in loaded.variables)
    expected_names = sorted(v.path + ":0" for v in classifier.weights)
    assert saved_names == expected_names
    cleaner_paths = {v.path for v in cleaner_variables}
    assert not any(name.split(":")[0] in cleaner_paths for name in saved_names)
    assert not any("metacleaner" in name or "weighting" in name for name in saved_names)

    # The checkpoint itself: exactly the classifier's tensors, however often referenced.
    reader = tf.train.load_checkpoint(os.path.join(exported[0], "variables", "variables"))
    stored = {
        key: reader.get_tensor(key)
        for key in reader.get_variable_to_shape_map()
        if key.startswith("variables/")
    }
    assert _variable_shapes(stored.values()) == _variable_shapes(classifier.weights)
    total = sum(int(np.prod(t.shape)) for t in stored.values())
    assert total == classifier.count_params() < trained_model.count_params()
    for key in reader.get_variable_to_shape_map():
        assert key.startswith(("variables/", "_all_variables/", "trainable_variables/")) or (
            "VARIABLE_VALUE" not in key
        ), key


def test_loads_and_matches_keras_without_keras_metacleaner(
    trained_model, exported, sample_images, tmp_path
):
    """The acceptance check: a clean TensorFlow process, our package unimportable."""
    images, _ = sample_images
    np.save(tmp_path / "images.npy", images)
    pngs = [tf.io.encode_png(image).numpy() for image in images]
    np.save(tmp_path / "pngs.npy", np.array(pngs, dtype=object), allow_pickle=True)
    script = textwrap.dedent(
        f"""
        import json, sys
        import numpy as np

        class Block:  # make `import keras_metacleaner` fail loudly
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "keras_metacleaner":
                    raise ImportError("keras_metacleaner must not be needed to serve")
        sys.meta_path.insert(0, Block())

        import tensorflow as tf
        loaded = tf.saved_model.load({exported[0]!r})
        images = np.load({str(tmp_path / "images.npy")!r})
        pngs = list(np.load({str(tmp_path / "pngs.npy")!r}, allow_pickle=True))
        out = {{}}
        for name, kwargs in [
            ("serving_default", {{"images": tf.constant(images.astype("float32"))}}),
            ("serving_uint8", {{"images": tf.constant(images)}}),
            ("serving_bytes", {{"image_bytes": tf.constant(pngs)}}),
        ]:
            result = loaded.signatures[name](**kwargs)
            out[name] = {{
                "probabilities": result["probabilities"].numpy().tolist(),
                "class_id": result["class_id"].numpy().tolist(),
                "class_name": [n.decode() for n in result["class_name"].numpy()],
            }}
        out["modules"] = sorted(m for m in sys.modules if m.startswith("keras_metacleaner"))
        print(json.dumps(out))
        """
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out.pop("modules") == []

    expected = keras_probabilities(trained_model, images)
    assert len(set(expected.argmax(-1))) > 1, "the trained model should not be constant"
    for name, result in out.items():
        np.testing.assert_allclose(result["probabilities"], expected, atol=1e-5, err_msg=name)
        assert result["class_id"] == expected.argmax(-1).tolist(), name
        assert result["class_name"] == [CLASS_NAMES[i] for i in result["class_id"]], name


def _saved_model_cli(*args) -> subprocess.CompletedProcess:
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    command = (
        [cli]
        if os.path.exists(cli)
        else [
            sys.executable,
            "-m",
            "tensorflow.python.tools.saved_model_cli",
        ]
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=300, env=env)


def test_saved_model_cli_lists_the_signatures(exported):
    run = _saved_model_cli("show", "--dir", exported[0], "--all")
    assert run.returncode == 0, run.stderr[-3000:]
    text = run.stdout
    assert "tag-set: 'serve'" in text or "tags: serve" in text or "'serve'" in text
    for signature in ("serving_default", "serving_uint8", "serving_bytes"):
        assert f"signature_def['{signature}']" in text, text
    for output in ("probabilities", "class_id", "class_name"):
        assert f"outputs['{output}']" in text
    assert (
        "inputs['images'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1, 28, 28, 1)"
        in text
    )
    assert "dtype: DT_UINT8" in text
    assert (
        "inputs['image_bytes'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1)" in text
    )


def test_plain_keras_classifier_exports(tmp_path):
    inputs = keras.Input((6, 5, 3))
    x = keras.layers.Flatten()(inputs)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    path = kmc.export.export_for_serving(model, tmp_path / "plain", version=5)
    assert os.path.basename(path) == "5"
    loaded = tf.saved_model.load(path)
    images = np.random.default_rng(0).uniform(0, 255, (4, 6, 5, 3)).astype("float32")
    result = loaded.signatures["serving_default"](images=tf.constant(images))
    np.testing.assert_allclose(
        result["probabilities"].numpy(), model.predict_on_batch(images), atol=1e-5
    )
    # Without class names, the name is the id.
    assert [n.decode() for n in result["class_name"].numpy()] == [
        str(i) for i in result["class_id"].numpy()
    ]


def test_bad_arguments_fail_before_writing(tmp_path):
    model = kmc.MetaCleanerModel(kmc.models.small_cnn((8, 8, 1)), num_classes=3, subset_size=2)
    base = tmp_path / "base"
    with pytest.raises(ValueError, match="class_names has 2 entries but the model has 3"):
        kmc.export.export_for_serving(model, base, class_names=["a", "b"])
    with pytest.raises(ValueError, match="without line breaks"):
        kmc.export.export_for_serving(model, base, class_names=["a", "b\nc", "d"])
    with pytest.raises(TypeError, match="list of strings"):
        kmc.export.export_for_serving(model, base, class_names="abc")
    with pytest.raises(TypeError, match="needs a keras.Model"):
        kmc.export.export_for_serving(lambda x: x, base)
    features = keras.Input((8, 8, 1))
    unpooled = keras.Model(features, keras.layers.Conv2D(3, 3)(features))
    with pytest.raises(ValueError, match="output class probabilities"):
        kmc.export.export_for_serving(unpooled, base)
    first, second = keras.Input((8, 8, 1)), keras.Input((8, 8, 1))
    two_inputs = keras.Model(
        [first, second], keras.layers.Dense(3)(keras.layers.Flatten()(first + second))
    )
    with pytest.raises(ValueError, match="must take one input"):
        kmc.export.export_for_serving(two_inputs, base)

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.flatten = keras.layers.Flatten()
            self.dense = keras.layers.Dense(3, activation="softmax")

        def call(self, x):
            return self.dense(self.flatten(x))

    subclassed = Subclassed()
    subclassed(np.zeros((1, 8, 8, 1), "float32"))
    with pytest.raises(ValueError, match="Cannot read the input shape"):
        kmc.export.export_for_serving(subclassed, base)
    assert not base.exists() or os.listdir(base) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        kmc.export.export_for_serving(model, tmp_path / "file")


def test_loads_like_tf_serving_in_a_graph_mode_session(trained_model, exported, sample_images):
    """TF Serving's C++ loader: tag "serve", signature_defs by tensor name, the init op
    filling the class-name table from assets/ - no Python objects involved."""
    images, _ = sample_images
    expected = keras_probabilities(trained_model, images)
    pngs = [tf.io.encode_png(image).numpy() for image in images]
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], exported[0])
        assert set(kmc.export.SIGNATURES) <= set(meta_graph.signature_def)
        for name, value in (("serving_default", images.astype("float32")), ("serving_bytes", pngs)):
            signature = meta_graph.signature_def[name]
            assert signature.method_name == "tensorflow/serving/predict"
            (input_info,) = signature.inputs.values()
            fetches = {key: info.name for key, info in signature.outputs.items()}
            result = session.run(fetches, {input_info.name: value})
            np.testing.assert_allclose(result["probabilities"], expected, atol=1e-5, err_msg=name)
            assert [n.decode() for n in result["class_name"]] == [
                CLASS_NAMES[i] for i in expected.argmax(-1)
            ]


def test_bad_and_empty_input_in_a_graph_mode_session(exported, sample_images):
    """The in-graph checks hold where TF Serving runs them: an empty batch answers empty,
    NaN pixels are an INVALID_ARGUMENT (HTTP 400) naming the input."""
    images = sample_images[0].astype("float32")
    images[0, 0, 0, 0] = np.nan
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], exported[0])
        signature = meta_graph.signature_def["serving_default"]
        (input_info,) = signature.inputs.values()
        fetches = {key: info.name for key, info in signature.outputs.items()}
        empty = session.run(fetches, {input_info.name: np.zeros((0, 28, 28, 1), "float32")})
        assert empty["probabilities"].shape == (0, 10) and empty["class_name"].shape == (0,)
        with pytest.raises(tf.errors.InvalidArgumentError, match="images holds 1 NaN or inf"):
            session.run(fetches, {input_info.name: images})
