"""Fixtures of the export tests: one small trained MetaCleanerModel, exported once."""

from __future__ import annotations

import keras
import pytest
from export_helpers import SUBSET_SIZE
from test_case import fashion_mnist_sample, group_subsets

import keras_metacleaner as kmc
from keras_metacleaner.data.sources.fashion_mnist import CLASS_NAMES


@pytest.fixture(scope="session")
def trained_model():
    """A small_cnn MetaCleanerModel (a weighting with variables) trained on 320 images."""
    keras.utils.set_random_seed(0)
    images, labels = fashion_mnist_sample(320, seed=0)
    x, y = group_subsets(images.astype("float32"), labels, SUBSET_SIZE)
    model = kmc.MetaCleanerModel(
        kmc.models.small_cnn((28, 28, 1)),
        num_classes=10,
        subset_size=SUBSET_SIZE,
        weighting="fc_relu_fc_relu_sig",
        hidden_units=32,
        seed=0,
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)
    return model


@pytest.fixture(scope="session")
def exported(trained_model, tmp_path_factory):
    """`(version_dir, export_base)` of `trained_model` exported with CLASS_NAMES."""
    base = str(tmp_path_factory.mktemp("exports") / "fashion_mnist")
    path = kmc.export.export_for_serving(trained_model, base, class_names=CLASS_NAMES)
    return path, base


@pytest.fixture(scope="session")
def loaded(exported):
    """The export loaded with `tf.saved_model.load`."""
    import tensorflow as tf

    return tf.saved_model.load(exported[0])


@pytest.fixture(scope="session")
def sample_images():
    """Eight Fashion-MNIST test images, uint8 `[8, 28, 28, 1]`, and their labels."""
    return fashion_mnist_sample(8, seed=1)
