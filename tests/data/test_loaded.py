"""Tests for keras_metacleaner.data.loaded: the LoadedData contract keeps the fast path."""

import numpy as np
import pytest
import tensorflow as tf

import keras_metacleaner as kmc
from keras_metacleaner.data import LoadedData, indexed


def _loaded(size=30, classes=3):
    """Images whose pixels all equal their index + 2 (so never in [0, 1]), labels index % 3."""
    x = np.broadcast_to(
        np.arange(2, size + 2, dtype=np.float32)[:, None, None, None], (size, 4, 4, 1)
    ).copy()
    y = np.arange(size) % classes
    return kmc.data.from_arrays(x, y, x[:6], y[:6], clean_labels=(y + 1) % classes, name="toy")


def _stream(loaded):
    """The same data without a random-access view (as TFDS gives it)."""
    train = loaded.train.map(lambda x, y: (x, y))
    return LoadedData(
        loaded.info, loaded.test, loaded.labels, train=train, clean_labels=loaded.clean_labels
    )


def _index_of(dataset):
    return [int(x[0, 0, 0]) - 2 for x, _ in dataset.as_numpy_iterator()]


def test_unpacks_as_train_test_info_and_carries_everything_explicitly():
    loaded = _loaded()
    train, test, info = loaded
    assert isinstance(train, tf.data.Dataset) and isinstance(info, kmc.data.DatasetInfo)
    assert loaded[0] is train and loaded[2] is info
    np.testing.assert_array_equal(loaded.labels, np.arange(30) % 3)
    np.testing.assert_array_equal(loaded.clean_labels, (np.arange(30) + 1) % 3)
    np.testing.assert_array_equal(loaded.indices, np.arange(30))
    assert loaded.paths is None and loaded.view is not None
    assert _index_of(train) == list(range(30))


@pytest.mark.parametrize("kind", ["view", "stream"])
def test_take_keeps_the_first_examples_and_the_view(kind):
    loaded = _loaded() if kind == "view" else _stream(_loaded())
    small = loaded.take(12)
    assert small.size == 12 and small.info.train_size == 12
    assert (small.view is not None) == (kind == "view")
    assert _index_of(small.train) == list(range(12))
    np.testing.assert_array_equal(small.labels, np.arange(12) % 3)
    np.testing.assert_array_equal(small.info.train_labels, small.labels)
    np.testing.assert_array_equal(small.clean_labels, (np.arange(12) + 1) % 3)
    assert loaded.take(100).size == 30
    # The original is untouched.
    assert loaded.size == 30


@pytest.mark.parametrize("kind", ["view", "stream"])
def test_with_labels_swaps_labels_in_order(kind):
    loaded = _loaded() if kind == "view" else _stream(_loaded())
    new = (np.arange(30) * 7) % 3
    swapped = loaded.with_labels(new)
    assert (swapped.view is not None) == (kind == "view")
    assert [int(y) for _, y in swapped.train.as_numpy_iterator()] == new.tolist()
    assert _index_of(swapped.train) == list(range(30))
    np.testing.assert_array_equal(swapped.info.train_labels, new)
    np.testing.assert_array_equal(swapped.clean_labels, loaded.clean_labels)


@pytest.mark.parametrize(
    "labels, message",
    [
        (np.zeros(29, int), "has 30 examples but 29 labels"),
        (np.full(30, 3), r"must lie in \[0, 3\), found 3"),
        (np.full(30, -1), "found -1"),
        (np.full(30, 0.5), "integer class ids"),
        (np.zeros((30, 1), int), "1-D"),
    ],
)
def test_with_labels_refuses_bad_labels(labels, message):
    with pytest.raises(ValueError, match=message):
        _loaded().with_labels(labels)


@pytest.mark.parametrize("kind", ["view", "stream"])
def test_split_validation_is_disjoint_complete_deterministic_and_keeps_indices(kind):
    loaded = (_loaded() if kind == "view" else _stream(_loaded())).take(20)
    noisy = loaded.with_labels((np.arange(20) + 2) % 3)
    kept, held = noisy.split_validation(0.25, seed=3)
    assert (kept.size, held.size) == (15, 5)
    assert (kept.view is not None) == (kind == "view")
    assert sorted(kept.indices.tolist() + held.indices.tolist()) == list(range(20))
    for part in (kept, held):
        # In the original order, with the noisy labels of those examples.
        assert _index_of(part.train) == part.indices.tolist()
        np.testing.assert_array_equal(part.labels, (part.indices + 2) % 3)
        np.testing.assert_array_equal(part.clean_labels, (part.indices + 1) % 3)
    again, _ = noisy.split_validation(0.25, seed=3)
    other, _ = noisy.split_validation(0.25, seed=4)
    np.testing.assert_array_equal(again.indices, kept.indices)
    assert not np.array_equal(other.indices, kept.indices)
    # Indices always refer to the original order, also after a second split.
    inner, _ = kept.split_validation(0.2, seed=0)
    assert set(inner.indices) <= set(kept.indices)


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.1, 0.001, True, "0.1"])
def test_split_validation_refuses_bad_fractions(fraction):
    with pytest.raises(ValueError, match="split_validation: "):
        _loaded().split_validation(fraction, seed=0)


def test_old_take_and_replace_labels_keep_working_on_both_forms():
    loaded = _loaded()
    assert kmc.data.take(loaded, 5).size == 5
    assert kmc.data.replace_labels(loaded, np.zeros(30, int)).labels.sum() == 0
    # On the dataset from `load`, the view still travels with the old helpers.
    small = kmc.data.replace_labels(kmc.data.take(loaded.train, 9), np.arange(9) % 3)
    source = indexed.get_source(small)
    assert source is not None and source.size == 9


def test_group_by_class_takes_the_index_path_for_loaded_data_after_take_and_with_labels(
    monkeypatch,
):
    from keras_metacleaner.data import grouping

    def no_streaming(*args, **kwargs):
        raise AssertionError("the streaming path was used")

    monkeypatch.setattr(grouping, "_streaming_path", no_streaming)
    loaded = _loaded().with_labels(np.arange(30) % 3).take(24)
    groups = kmc.data.group_by_class(loaded, subset_size=2, groups_per_batch=3, seed=0)
    assert int(groups.cardinality()) == 4
    seen = np.concatenate([x.numpy()[..., 0, 0, 0].ravel() for x, _ in groups]).astype(int) - 2
    np.testing.assert_array_equal(np.sort(seen), np.arange(24))
    # A stream is grouped by streaming (and the stub proves which path that is).
    with pytest.raises(AssertionError, match="streaming path was used"):
        kmc.data.group_by_class(_stream(loaded), subset_size=2, groups_per_batch=3, seed=0)


def test_plain_tf_take_of_the_train_dataset_loses_the_view():
    # Why the explicit object exists: tf.data operations drop attributes.
    loaded = _loaded()
    assert indexed.get_source(loaded.train) is not None
    assert indexed.get_source(loaded.train.take(5)) is None
    assert indexed.get_source(loaded.train.prefetch(1)) is None


def test_constructor_checks():
    loaded = _loaded()
    with pytest.raises(ValueError, match="exactly one of"):
        LoadedData(loaded.info, loaded.test, loaded.labels)
    with pytest.raises(ValueError, match="differ from the view"):
        LoadedData(loaded.info, loaded.test, loaded.labels[::-1], view=loaded.view)
    assert "path=index" in repr(loaded) and "path=streaming" in repr(_stream(loaded))
