"""Shared test helpers: a `run_layer_test` in the spirit of keras-rs, tiny data and models.

Import from test files as `from test_case import ...` (pytest puts `tests/` on
`sys.path` because `tests/conftest.py` lives there and `tests/` is no package).
"""

from __future__ import annotations

import functools
import glob
import gzip
import json
import os
import subprocess

import keras
import numpy as np
import tensorflow as tf

import keras_metacleaner as kmc

#: Every weighting the library knows, the parameter list of most core tests.
ALL_WEIGHTINGS = sorted(kmc.layers.WEIGHTINGS)
#: Weightings with trainable variables.
LEARNED_WEIGHTINGS = [
    name
    for name in ALL_WEIGHTINGS
    if kmc.layers.get_weighting(name, subset_size=2, hidden_units=4).__class__.__name__
    not in ("ConstantWeighting", "LabelConfidenceWeighting", "LabelPosteriorWeighting")
]


def _call(layer, inputs, **call_kwargs):
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    return layer(*inputs, **call_kwargs)


def _assert_same_structure_close(actual, expected, atol=1e-6, msg=""):
    actual = keras.tree.flatten(actual)
    expected = keras.tree.flatten(expected)
    assert len(actual) == len(expected), msg
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(e), atol=atol, err_msg=msg
        )


def _flat_shapes(structure) -> list[tuple]:
    return [tuple(t.shape) for t in keras.tree.flatten(structure)]


def _expected_shapes(expected_output_shape) -> list[tuple]:
    if isinstance(expected_output_shape[0], tuple):
        return [tuple(shape) for shape in expected_output_shape]
    return [tuple(expected_output_shape)]


def _symbolic_model(layer, inputs, call_kwargs):
    symbolic = [keras.Input(tuple(x.shape[1:]), batch_size=None) for x in inputs]
    outputs = _call(layer, tuple(symbolic), **call_kwargs)
    return keras.Model(symbolic if len(symbolic) > 1 else symbolic[0], outputs)


def _model_inputs(inputs):
    return list(inputs) if len(inputs) > 1 else inputs[0]


def run_layer_test(
    layer_cls,
    init_kwargs: dict,
    input_data,
    expected_output_shape=None,
    call_kwargs: dict | None = None,
    expected_num_trainable_weights: int | None = None,
    expected_num_non_trainable_weights: int | None = None,
    tmp_path=None,
    run_training_check: bool = True,
    run_mixed_precision_check: bool = True,
):
    """Checks a layer the way Keras' own `run_layer_test` does.

    In order: an eager call and its output shapes (and `compute_output_shape`);
    a symbolic call on `keras.Input`s with the same shapes (batch size left
    open); the numbers of trainable and non-trainable weights; one training
    step of a model around the layer (a finite loss, and every layer with
    trainable weights moves at least one of them); a call under the
    `mixed_float16` policy (float16 compute, float32 variables, finite
    outputs); `get_config` is JSON-able and `from_config` rebuilds a layer
    with the same configuration and, given the same weights, the same
    outputs; `keras.saving.serialize_keras_object` round-trips by the
    registered name; and, with `tmp_path`, a model holding the layer
    survives `model.save(".keras")` / `load_model` with identical outputs.

    Args:
        layer_cls: the layer class.
        init_kwargs: constructor arguments.
        input_data: one array or a tuple of arrays, passed positionally.
        expected_output_shape: a shape tuple, or a tuple of shapes for
            several outputs.
        call_kwargs: extra keyword arguments of `call`.
        expected_num_trainable_weights: checked when not None.
        expected_num_non_trainable_weights: checked when not None.
        tmp_path: directory for the `.keras` file; skipped when None.
        run_training_check: run the training step.
        run_mixed_precision_check: run the mixed-precision call.

    Returns:
        The layer under test (built and called).

    Example:

    >>> _ = run_layer_test(kmc.layers.MetaCleaner, {"subset_size": 2, "weighting": "constant"},
    ...                    np.ones((3, 2, 4), "float32"), expected_output_shape=(3, 4))
    """
    call_kwargs = call_kwargs or {}
    inputs = input_data if isinstance(input_data, tuple) else (input_data,)
    inputs = tuple(keras.ops.convert_to_tensor(x) for x in inputs)
    name = layer_cls.__name__

    # Eager call.
    layer = layer_cls(**init_kwargs)
    output = _call(layer, inputs, **call_kwargs)
    if expected_output_shape is not None:
        expected = _expected_shapes(expected_output_shape)
        assert _flat_shapes(output) == expected, f"{name}: output shapes {_flat_shapes(output)}"
        computed = layer.compute_output_shape(inputs[0].shape)
        assert computed == (expected[0] if len(expected) == 1 else tuple(expected)), computed

    # Symbolic call: same shapes with the batch dimension open.
    symbolic = _symbolic_model(layer_cls(**init_kwargs), inputs, call_kwargs)
    if expected_output_shape is not None:
        open_batch = [(None, *shape[1:]) for shape in _expected_shapes(expected_output_shape)]
        symbolic_shapes = [tuple(t.shape) for t in keras.tree.flatten(symbolic.outputs)]
        assert symbolic_shapes == open_batch, f"{name}: symbolic shapes {symbolic_shapes}"

    if expected_num_trainable_weights is not None:
        assert len(layer.trainable_weights) == expected_num_trainable_weights, [
            w.path for w in layer.trainable_weights
        ]
    if expected_num_non_trainable_weights is not None:
        assert len(layer.non_trainable_weights) == expected_num_non_trainable_weights, [
            w.path for w in layer.non_trainable_weights
        ]

    if run_training_check:
        _check_training_step(layer_cls, init_kwargs, inputs, call_kwargs)
    if run_mixed_precision_check:
        _check_mixed_precision(layer_cls, init_kwargs, inputs, call_kwargs)

    # get_config -> from_config: same configuration, same function.
    config = layer.get_config()
    json.dumps(config)  # must be JSON-able to go into a .keras file
    clone = layer_cls.from_config(config)
    _call(clone, inputs, **call_kwargs)
    assert clone.get_config() == config
    clone.set_weights(layer.get_weights())
    _assert_same_structure_close(
        _call(clone, inputs, **call_kwargs), output, msg="from_config clone differs"
    )

    # Registered: a serialized layer comes back as the same class by name.
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(revived) is layer_cls
    assert revived.get_config() == config

    if tmp_path is not None:
        model = _symbolic_model(layer, inputs, call_kwargs)
        path = os.path.join(str(tmp_path), f"{layer.name}.keras")
        model.save(path)
        loaded = keras.models.load_model(path)
        _assert_same_structure_close(
            loaded(_model_inputs(inputs)),
            model(_model_inputs(inputs)),
            msg="save/load changed the outputs",
        )
    return layer


def _check_training_step(layer_cls, init_kwargs, inputs, call_kwargs):
    """One SGD step on a model around a fresh layer: finite loss, weights that move."""
    keras.utils.set_random_seed(0)
    layer = layer_cls(**init_kwargs)
    model = _symbolic_model(layer, inputs, call_kwargs)
    outputs = keras.tree.flatten(model(_model_inputs(inputs)))
    rng = np.random.default_rng(0)
    targets = [rng.normal(size=tuple(o.shape)).astype("float32") for o in outputs]
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=["mse"] * len(outputs))
    before = [w.numpy().copy() for w in layer.trainable_weights]
    logs = model.train_on_batch(
        _model_inputs(inputs), targets if len(targets) > 1 else targets[0], return_dict=True
    )
    assert np.isfinite(logs["loss"]), f"{layer_cls.__name__}: non-finite loss {logs}"
    if before:
        moved = [np.any(w.numpy() != b) for w, b in zip(layer.trainable_weights, before)]
        assert any(moved), f"{layer_cls.__name__}: a training step moved no trainable weight"


def _check_mixed_precision(layer_cls, init_kwargs, inputs, call_kwargs):
    """Under mixed_float16: float16 compute, float32 variables, finite outputs."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        # A config's own dtype policy (from get_config) would pin float32.
        layer = layer_cls(**{k: v for k, v in init_kwargs.items() if k != "dtype"})
        assert layer.compute_dtype == "float16" and layer.variable_dtype == "float32"
        outputs = keras.tree.flatten(_call(layer, inputs, **call_kwargs))
        for output in outputs:
            values = keras.ops.convert_to_numpy(keras.ops.cast(output, "float32"))
            assert np.all(np.isfinite(values)), f"{layer_cls.__name__}: non-finite under float16"
        for variable in layer.weights:
            assert variable.dtype == "float32", variable.path
    finally:
        keras.config.set_dtype_policy(previous)


# ------------------------------------------------------------------ tiny data
def random_subsets(
    num_subsets: int = 4,
    subset_size: int = 3,
    image_shape=(8, 8, 1),
    num_classes: int = 3,
    seed: int = 0,
):
    """Random raw-pixel subsets `x [K, N, H, W, C]` float32 and labels `y [K]` int32."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (num_subsets, subset_size, *image_shape)).astype("float32")
    y = rng.integers(0, num_classes, num_subsets).astype("int32")
    return x, y


def tiny_model(
    weighting: str = kmc.layers.DEFAULT_WEIGHTING,
    subset_size: int = 3,
    num_classes: int = 3,
    image_shape=(8, 8, 1),
    feature_dim: int = 16,
    hidden_units: int = 8,
    compile: bool = True,
    learning_rate: float = 0.05,
    metrics=("accuracy",),
    model_class=None,
    **kwargs,
) -> kmc.MetaCleanerModel:
    """A MetaCleanerModel on an 8x8 small CNN, compiled with SGD (no BatchNorm: exact math)."""
    backbone = kmc.models.small_cnn(image_shape, feature_dim=feature_dim)
    model = (model_class or kmc.MetaCleanerModel)(
        backbone,
        num_classes=num_classes,
        subset_size=subset_size,
        weighting=weighting,
        hidden_units=hidden_units,
        **kwargs,
    )
    if compile:
        model.compile(
            optimizer=keras.optimizers.SGD(learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=list(metrics),
        )
    return model


@functools.cache
def two_replica_strategy() -> tf.distribute.MirroredStrategy:
    """One MirroredStrategy over the two logical CPUs that tests/conftest.py makes.

    Shared on purpose: a second MirroredStrategy in the same process reuses
    collective instance keys, and all-reducing a model of another size then
    fails with "Shape mismatch in the collective instance".
    """
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


# ------------------------------------------------------------- Fashion-MNIST
def _fashion_mnist_dir() -> str:
    """Where the Debian package dataset-fashion-mnist put the files (never hard-coded)."""
    try:
        listing = subprocess.run(
            ["dpkg", "-L", "dataset-fashion-mnist"], capture_output=True, text=True, check=True
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        listing = []
    for path in listing:
        if path.endswith("train-images-idx3-ubyte.gz"):
            return os.path.dirname(path)
    found = glob.glob("/usr/share/**/train-images-idx3-ubyte.gz", recursive=True)
    if not found:
        raise FileNotFoundError(
            "Fashion-MNIST not found: install the Debian package dataset-fashion-mnist."
        )
    return os.path.dirname(found[0])


def _fashion_mnist_split(prefix: str, num_examples: int, rng: np.random.Generator):
    """`num_examples` random uint8 images `[n, 28, 28, 1]` and int32 labels of one split."""
    root = _fashion_mnist_dir()
    with gzip.open(os.path.join(root, f"{prefix}-labels-idx1-ubyte.gz")) as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8).astype("int32")
    with gzip.open(os.path.join(root, f"{prefix}-images-idx3-ubyte.gz")) as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28, 1)
    index = rng.choice(len(labels), num_examples, replace=False)
    return images[index], labels[index]


def fashion_mnist_train(num_examples: int, seed: int = 0):
    """`num_examples` random training images `[n, 28, 28, 1]` float32 (0-255) and labels."""
    images, labels = _fashion_mnist_split("train", num_examples, np.random.default_rng(seed))
    return images.astype("float32"), labels


def fashion_mnist_sample(num_examples: int, seed: int = 0):
    """`num_examples` test-split images uint8 `[n, 28, 28, 1]` and int32 labels.

    Falls back to random pixels (labels by brightness) without the Debian package.
    """
    rng = np.random.default_rng(seed)
    try:
        return _fashion_mnist_split("t10k", num_examples, rng)
    except FileNotFoundError:
        images = rng.integers(0, 256, (num_examples, 28, 28, 1), dtype=np.uint8)
        labels = (images.mean(axis=(1, 2, 3)) / 25.6).astype("int32") % 10
        return images, labels


def symmetric_noise(labels, rate: float, num_classes: int, seed: int = 0):
    """Flips exactly round(rate·n) labels to one of the other classes."""
    rng = np.random.default_rng(seed)
    noisy = labels.copy()
    flipped = rng.choice(len(labels), int(round(rate * len(labels))), replace=False)
    noisy[flipped] = (labels[flipped] + rng.integers(1, num_classes, len(flipped))) % num_classes
    return noisy


def group_subsets(images, labels, subset_size: int, seed: int = 0):
    """NumPy grouping: every class's examples shuffled and cut into subsets of N.

    Returns:
        `x [K, N, ...]` and `y [K]`, K = Σ_c floor(n_c / N), subsets shuffled.
    """
    rng = np.random.default_rng(seed)
    groups, group_labels = [], []
    for c in np.unique(labels):
        index = rng.permutation(np.flatnonzero(labels == c))
        usable = len(index) // subset_size * subset_size
        groups.append(index[:usable].reshape(-1, subset_size))
        group_labels.append(np.full(usable // subset_size, c, "int32"))
    groups = np.concatenate(groups)
    group_labels = np.concatenate(group_labels)
    order = rng.permutation(len(groups))
    return images[groups[order]], group_labels[order]


# ----------------------------------------------------------------- summaries
def scalar_tags(event_dir: str) -> dict[str, list[float]]:
    """Scalar summaries in the TF event files under `event_dir`: tag -> values."""
    values: dict[str, list[float]] = {}
    for path in sorted(
        glob.glob(os.path.join(event_dir, "**", "events.out.tfevents.*"), recursive=True)
    ):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    number = value.simple_value
                else:
                    number = float(tf.make_ndarray(value.tensor))
                values.setdefault(value.tag, []).append(number)
    return values


# ------------------------------------------------------- training fixtures
def write_noisy_npz(
    path: str,
    num_classes: int = 4,
    train_per_class: int = 48,
    test_per_class: int = 12,
    image_shape=(8, 8, 1),
    noise_rate: float = 0.25,
    seed: int = 0,
) -> str:
    """A tiny learnable `npz:` dataset with noisy `y_train` and `y_train_clean`.

    Each class is a bright square at its own position on a noisy background,
    so a small CNN separates the classes within a few steps.

    Returns:
        `path` (an `.npz` with x_train, y_train, y_train_clean, x_test, y_test,
        class_names).
    """
    rng = np.random.default_rng(seed)
    h, w = image_shape[:2]

    def images(labels):
        x = rng.uniform(0, 60, size=(len(labels), *image_shape)).astype("float32")
        for i, c in enumerate(labels):
            top, left = divmod(int(c) * 2 % (h * w // 4), w // 2)
            x[i, top : top + h // 2, left : left + w // 2] += 180.0
        return np.clip(x, 0, 255)

    y_train_clean = rng.permutation(np.repeat(np.arange(num_classes), train_per_class)).astype(
        "int32"
    )
    y_test = np.repeat(np.arange(num_classes), test_per_class).astype("int32")
    y_train = symmetric_noise(y_train_clean, noise_rate, num_classes, seed=seed)
    np.savez(
        path,
        x_train=images(y_train_clean),
        y_train=y_train,
        y_train_clean=y_train_clean,
        x_test=images(y_test),
        y_test=y_test,
        class_names=np.array([f"class_{c}" for c in range(num_classes)]),
    )
    return path
