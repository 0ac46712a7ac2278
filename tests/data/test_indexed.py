"""Tests for keras_metacleaner.data.indexed: `take` keeps the random-access view."""

import numpy as np
import pytest
import tensorflow as tf

import keras_metacleaner as kmc
from keras_metacleaner.data import indexed
from keras_metacleaner.data.sources import common


def _indexed_dataset(size=30):
    """Images whose pixels all equal their index, labels `index % 3`, with a view."""
    images = np.broadcast_to(
        np.arange(size, dtype=np.float32)[:, None, None, None], (size, 4, 4, 1)
    ).copy()
    labels = (np.arange(size) % 3).astype(np.int32)
    return common.array_dataset(images, labels), images, labels


def test_take_returns_the_first_examples_and_their_view():
    ds, images, labels = _indexed_dataset()
    small = kmc.data.take(ds, 12)
    taken = list(small.as_numpy_iterator())
    np.testing.assert_array_equal(np.stack([x for x, _ in taken]), images[:12])
    np.testing.assert_array_equal([y for _, y in taken], labels[:12])
    source = indexed.get_source(small)
    assert source is not None
    np.testing.assert_array_equal(source.elements, images[:12])
    np.testing.assert_array_equal(source.labels, labels[:12])
    # The original view is untouched.
    assert indexed.get_source(ds).size == 30


def test_grouping_a_taken_dataset_uses_only_the_first_examples():
    ds, _, labels = _indexed_dataset()
    grouped = kmc.data.group_by_class(kmc.data.take(ds, 12), subset_size=2, groups_per_batch=2)
    seen = np.concatenate([x.numpy()[..., 0, 0, 0].ravel() for x, _ in grouped]).astype(int)
    # 3 classes of 4: 6 subsets of 2, 3 batches, every one of the 12 examples once.
    np.testing.assert_array_equal(np.sort(seen), np.arange(12))
    for x, y in grouped:
        np.testing.assert_array_equal(
            labels[x.numpy()[..., 0, 0, 0].astype(int)], np.repeat(y.numpy()[:, None], 2, 1)
        )


def test_take_more_than_the_dataset_keeps_everything():
    ds, images, _ = _indexed_dataset(size=5)
    small = kmc.data.take(ds, 50)
    assert int(small.cardinality()) == 5
    np.testing.assert_array_equal(indexed.get_source(small).elements, images)


def test_take_without_a_view_is_plain_take():
    plain = tf.data.Dataset.range(10)
    small = kmc.data.take(plain, 4)
    assert indexed.get_source(small) is None
    assert list(small.as_numpy_iterator()) == [0, 1, 2, 3]


@pytest.mark.parametrize("count", [-1, 2.5, True, "3"])
def test_take_rejects_a_bad_count(count):
    ds, _, _ = _indexed_dataset(size=5)
    with pytest.raises(ValueError, match=r"take: `count` must be an integer >= 0, got"):
        kmc.data.take(ds, count)
