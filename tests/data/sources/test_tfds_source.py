"""Tests for the tfds: source, on tfds.testing.mock_data (no data on disk)."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

import keras_metacleaner as kmc


def test_cifar10_n_with_a_noisy_label_key():
    with tfds.testing.mock_data(num_examples=12):
        train, test, info = kmc.data.load("tfds:cifar10_n?label=worse_label", image_size=16)
        pairs = list(train.as_numpy_iterator())
        assert info.num_classes == 10 and info.image_shape == (16, 16, 3)
        assert info.train_size == 12 == len(pairs)
        assert pairs[0][0].dtype == np.float32 and pairs[0][0].shape == (16, 16, 3)
        np.testing.assert_array_equal([y for _, y in pairs], info.train_labels)
        # The clean key is kept for diagnostics and differs from the noisy one somewhere.
        assert info.train_clean_labels is not None
        assert info.train_clean_labels.shape == info.train_labels.shape
        assert len(list(test)) == info.test_size


def test_cifar10_plain_and_grouping():
    with tfds.testing.mock_data(num_examples=16):
        train, _, info = kmc.data.load("tfds:cifar10")
        assert info.train_clean_labels is None and info.image_shape == (32, 32, 3)
        x, y = next(iter(kmc.data.group_by_class(train, 2, 2, seed=0, labels=info.train_labels)))
        assert x.shape == (2, 2, 32, 32, 3) and y.shape == (2,)


def test_tfds_errors():
    with tfds.testing.mock_data(num_examples=4):
        with pytest.raises(KeyError, match="no feature 'nope'"):
            kmc.data.load("tfds:cifar10?label=nope")
        with pytest.raises(ValueError, match="unknown option"):
            kmc.data.load("tfds:cifar10?lable=label")
    with pytest.raises(ValueError, match="Unknown TFDS dataset"):
        kmc.data.load("tfds:not_a_dataset_xyz")
