"""Tests for keras_metacleaner.data.preprocessing and the skipping of unreadable files."""

import logging
import os

import numpy as np
import pytest
import tensorflow as tf

from keras_metacleaner.data import preprocessing
from keras_metacleaner.data.indexed import DecodeErrors
from keras_metacleaner.data.sources import common


def test_decode_png_and_jpeg_to_raw_float_pixels(tmp_path, image_writer):
    png = image_writer(str(tmp_path / "a.png"), size=(5, 4), value=200)
    jpg = image_writer(str(tmp_path / "b.jpg"), size=(6, 3), mode="L", value=100)
    image = preprocessing.read_image(png)
    assert image.dtype == tf.float32 and image.shape == (4, 5, 3)
    np.testing.assert_allclose(image.numpy(), 200.0)
    gray = preprocessing.read_image(jpg, channels=3, image_size=(8, 8))
    assert gray.shape == (8, 8, 3)
    assert 90 <= float(tf.reduce_mean(gray)) <= 110


def test_train_augment_crops_flips_and_is_seeded():
    image = tf.reshape(tf.range(32 * 32, dtype=tf.float32), (32, 32, 1))
    augment = preprocessing.train_augment(28)
    a = augment(image, seed=[1, 2])
    assert a.shape == (28, 28, 1)
    np.testing.assert_array_equal(a.numpy(), augment(image, seed=[1, 2]).numpy())
    outputs = {augment(image, seed=[s, 0]).numpy().tobytes() for s in range(8)}
    assert len(outputs) > 1
    x, y = augment(image, 3)
    assert x.shape == (28, 28, 1) and int(y) == 3


def test_image_size_none_keeps_the_input_size():
    image = tf.reshape(tf.range(28 * 28, dtype=tf.float32), (28, 28, 1))
    assert preprocessing.train_augment(None)(image, seed=[0, 1]).shape == (28, 28, 1)
    np.testing.assert_array_equal(preprocessing.test_transform(None)(image).numpy(), image.numpy())


def test_test_transform_center_crops():
    image = tf.reshape(tf.range(8 * 8, dtype=tf.float32), (8, 8, 1))
    out = preprocessing.test_transform(4, resize_ratio=2.0)(image)
    assert out.shape == (4, 4, 1)
    np.testing.assert_array_equal(
        out.numpy(), image.numpy()[2:6, 2:6]
    )  # ratio 2 of 4 = 8: no resize


def test_rgb_option_and_to_rgb():
    assert preprocessing.test_transform(4, rgb=True)(tf.zeros((4, 4, 1))).shape == (4, 4, 3)
    assert preprocessing.to_rgb(tf.zeros((2, 3, 3))).shape == (2, 3, 3)


@pytest.mark.parametrize("bad", [0, (3,), (4, -1)])
def test_bad_image_size(bad):
    with pytest.raises(ValueError, match="image_size"):
        preprocessing.train_augment(bad)


def test_corrupt_and_missing_files_are_skipped_counted_and_logged_once(
    tmp_path, image_writer, corrupt_writer, caplog
):
    paths = [image_writer(str(tmp_path / f"{i}.jpg"), value=10 * i) for i in range(5)]
    paths.insert(2, corrupt_writer(str(tmp_path / "bad.jpg")))
    paths.append(str(tmp_path / "missing.png"))  # the last element: caught by the sentinel
    labels = np.arange(len(paths)) % 2
    errors = DecodeErrors()
    ds = common.files_dataset(paths, labels, (10, 12, 3), errors)
    # The declared length holds: the two missing places are refilled from a second pass.
    assert int(ds.cardinality()) == 7
    with caplog.at_level(logging.WARNING, logger="keras_metacleaner"):
        out = list(ds.as_numpy_iterator())
        assert len(out) == 7
        assert errors.count == 2
        assert errors.paths == [paths[2], paths[-1]]
        list(ds.as_numpy_iterator())
    assert errors.count == 2  # per file, not per hit
    warnings = [r for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(warnings) == 1 and "bad.jpg" in warnings[0].getMessage()
    # Labels stay with their images; the refill starts again from the first good file.
    assert [int(y) for _, y in out] == [0, 1, 1, 0, 1, 0, 1]
    np.testing.assert_array_equal(out[5][0], out[0][0])
    assert os.path.basename(paths[2]) == "bad.jpg"
