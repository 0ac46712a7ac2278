"""Tests of the backbones: raw pixels in, a feature vector out, preprocessing inside."""

import os

import keras
import numpy as np
import pytest
from test_case import run_layer_test

from keras_metacleaner.models import (
    CaffePreprocessing,
    MetaCleanerModel,
    get_backbone,
    resnet50,
    small_cnn,
    wide_resnet,
)


def test_small_cnn_shapes_and_rescaling():
    backbone = small_cnn((12, 12, 1), feature_dim=7)
    assert backbone.output_shape == (None, 7)
    # Preprocessing inside: the first layer after the input rescales pixels.
    assert isinstance(backbone.layers[1], keras.layers.Rescaling)
    features = backbone(np.full((2, 12, 12, 1), 255.0, "float32"))
    assert features.shape == (2, 7)
    assert np.all(np.isfinite(features.numpy()))


def test_caffe_preprocessing_matches_keras_applications():
    rgb = np.random.default_rng(0).uniform(0, 255, (2, 3, 3, 3)).astype("float32")
    expected = keras.applications.resnet50.preprocess_input(rgb.copy())
    np.testing.assert_allclose(CaffePreprocessing()(rgb).numpy(), expected, rtol=1e-6, atol=1e-4)


def test_caffe_preprocessing_repeats_grayscale():
    gray = np.random.default_rng(1).uniform(0, 255, (2, 3, 3, 1)).astype("float32")
    out = CaffePreprocessing()(gray).numpy()
    expected = keras.applications.resnet50.preprocess_input(np.repeat(gray, 3, -1))
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-4)


def test_caffe_preprocessing_layer_contract(tmp_path):
    run_layer_test(
        CaffePreprocessing,
        {},
        np.zeros((2, 4, 4, 1), "float32"),
        expected_output_shape=(2, 4, 4, 3),
        tmp_path=tmp_path,
    )


def test_resnet50_at_32_pixels_inside_a_metacleaner_model():
    # The paper's backbone, once, at the smallest size it accepts.
    backbone = resnet50((32, 32, 1))
    assert backbone.output_shape == (None, 2048)
    model = MetaCleanerModel(backbone, num_classes=3, subset_size=2, hidden_units=8)
    x = np.random.default_rng(2).uniform(0, 255, (2, 2, 32, 32, 1)).astype("float32")
    probabilities = model.predict_sets(x, labels=np.array([0, 1]))
    assert probabilities.shape == (2, 3)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-5)


def test_resnet50_missing_weights_file_is_named(tmp_path):
    missing = os.path.join(tmp_path, "nope.weights.h5")
    with pytest.raises(FileNotFoundError, match="nope.weights.h5"):
        resnet50((32, 32, 3), weights=missing)


def test_wide_resnet_tiny():
    backbone = wide_resnet((8, 8, 3), depth=10, width=1, dropout=0.0)
    assert backbone.output_shape == (None, 64)
    features = backbone(np.zeros((2, 8, 8, 3), "float32"))
    assert features.shape == (2, 64)


def test_wide_resnet_depth_must_be_6n_plus_4():
    with pytest.raises(ValueError, match=r"6n \+ 4, got 12"):
        wide_resnet((8, 8, 3), depth=12, width=1)


def test_get_backbone_by_name():
    assert get_backbone("small_cnn", (8, 8, 1)).output_shape == (None, 128)
    with pytest.raises(ValueError, match=r"'vgg16'.*expected one of"):
        get_backbone("vgg16", (8, 8, 1))
    with pytest.raises(ValueError, match=r"'small_cnn' has no pretrained weights.*'imagenet'"):
        get_backbone("small_cnn", (8, 8, 1), weights="imagenet")


def test_backbone_save_and_load(tmp_path):
    backbone = small_cnn((8, 8, 1), feature_dim=4)
    path = os.path.join(tmp_path, "backbone.keras")
    backbone.save(path)
    loaded = keras.models.load_model(path)
    images = np.random.default_rng(3).uniform(0, 255, (3, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(loaded(images).numpy(), backbone(images).numpy(), rtol=1e-6)
