"""Tests for keras_metacleaner.data.noise."""

import logging

import numpy as np
import pytest
import tensorflow as tf

from keras_metacleaner.data import add_label_noise, noise_from_spec, replace_labels
from keras_metacleaner.data.noise import confusion_targets
from keras_metacleaner.data.noise_spec import DEFAULT_CONFUSION


@pytest.mark.parametrize("rate", [0.0, 0.2, 0.4, 0.61])
def test_symmetric_flips_exactly_round_rate_n_to_other_classes(rate):
    labels = np.arange(1000) % 10
    noisy, flipped = add_label_noise(labels, rate, "symmetric", num_classes=10, seed=1)
    assert noisy.dtype == np.int32 and flipped.dtype == np.bool_
    assert flipped.sum() == round(rate * 1000)
    np.testing.assert_array_equal(noisy != labels, flipped)
    assert flipped.mean() == pytest.approx(round(rate * 1000) / 1000)


def test_symmetric_targets_are_uniform_over_the_other_classes():
    labels = np.zeros(20000, dtype=np.int64)
    noisy, flipped = add_label_noise(labels, 0.9, "symmetric", num_classes=4, seed=0)
    counts = np.bincount(noisy[flipped], minlength=4)
    assert counts[0] == 0
    np.testing.assert_allclose(counts[1:] / flipped.sum(), 1 / 3, atol=0.02)


def test_pairflip_moves_to_next_class():
    labels = np.arange(100) % 5
    noisy, flipped = add_label_noise(labels, 0.3, "pairflip", num_classes=5, seed=2)
    assert flipped.sum() == 30
    np.testing.assert_array_equal(noisy[flipped], (labels[flipped] + 1) % 5)
    np.testing.assert_array_equal(noisy[~flipped], labels[~flipped])


def test_transition_follows_the_matrix():
    matrix = np.array([[0.7, 0.3, 0.0], [0.0, 1.0, 0.0], [0.5, 0.0, 0.5]])
    labels = np.repeat(np.arange(3), 10000)
    noisy, flipped = add_label_noise(labels, 0.0, "transition", num_classes=3, transition=matrix)
    for c in range(3):
        observed = np.bincount(noisy[labels == c], minlength=3) / 10000
        np.testing.assert_allclose(observed, matrix[c], atol=0.02)
    np.testing.assert_array_equal(flipped, noisy != labels)


def test_same_seed_same_noise_and_rate_is_logged(caplog):
    labels = np.arange(300) % 3
    with caplog.at_level(logging.INFO, logger="keras_metacleaner"):
        first = add_label_noise(labels, 0.4, "symmetric", num_classes=3, seed=7)
    assert any("realised rate 0.4000" in r.getMessage() for r in caplog.records)
    second = add_label_noise(labels, 0.4, "symmetric", num_classes=3, seed=7)
    other = add_label_noise(labels, 0.4, "symmetric", num_classes=3, seed=8)
    np.testing.assert_array_equal(first[0], second[0])
    assert not np.array_equal(first[0], other[0])


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"rate": 1.5}, ValueError, "rate"),
        ({"kind": "asym"}, ValueError, "Unknown noise kind 'asym'"),
        ({"num_classes": 1}, ValueError, "num_classes"),
        ({"labels": [0, 1, 5]}, ValueError, r"\[0, 3\), found 5"),
        ({"labels": [0.5, 1.0]}, ValueError, "integer"),
        ({"kind": "transition"}, ValueError, "transition"),
        ({"kind": "transition", "transition": np.ones((3, 3))}, ValueError, "sum to 1"),
        ({"kind": "transition", "transition": np.eye(2)}, ValueError, "shape"),
    ],
)
def test_bad_input(kwargs, error, message):
    args = {"labels": [0, 1, 2], "rate": 0.5, "kind": "symmetric", "num_classes": 3}
    args.update(kwargs)
    with pytest.raises(error, match=message):
        add_label_noise(**args)


def test_replace_labels_keeps_order_and_checks_length():
    ds = tf.data.Dataset.from_tensor_slices((np.arange(4.0), np.zeros(4, "int32")))
    out = replace_labels(ds, [3, 2, 1, 0])
    assert [(float(x), int(y)) for x, y in out] == [(0.0, 3), (1.0, 2), (2.0, 1), (3.0, 0)]
    assert out.element_spec[1].dtype == tf.int32
    with pytest.raises(ValueError, match="4 elements but 3 labels"):
        replace_labels(ds, [0, 1, 2])


COUNTS = np.array([[80, 15, 5, 0], [2, 90, 0, 8], [0, 0, 100, 0], [30, 10, 0, 60]])


@pytest.mark.parametrize("rate", [0.0, 0.2, 0.4, 0.8])
def test_confusion_flips_round_rate_of_every_class(rate):
    labels = np.repeat(np.arange(4), [500, 300, 200, 1000])
    noisy, flipped = add_label_noise(labels, rate, "confusion", 4, seed=0, confusion=COUNTS)
    np.testing.assert_array_equal(flipped, noisy != labels)
    for c, n in enumerate([500, 300, 200, 1000]):
        assert flipped[labels == c].sum() == round(rate * n)  # the diagonal is 1 - rate per row
    assert flipped.mean() == pytest.approx(rate, abs=1e-3)


def test_confusion_flips_follow_the_off_diagonal_rows():
    labels = np.repeat(np.arange(4), 20000)
    noisy, flipped = add_label_noise(labels, 0.5, "confusion", 4, seed=1, confusion=COUNTS)
    expected = confusion_targets(COUNTS)
    np.testing.assert_allclose(expected[0], [0, 0.75, 0.25, 0])
    np.testing.assert_allclose(expected[2], [1 / 3, 1 / 3, 0, 1 / 3])  # never confused: uniform
    for c in range(4):
        observed = np.bincount(noisy[(labels == c) & flipped], minlength=4) / 10000
        np.testing.assert_allclose(observed, expected[c], atol=0.015)


def test_committed_fashion_mnist_confusion_matrix():
    spec = noise_from_spec("confusion", 0.4, 10, "fashion_mnist")
    counts = np.load(DEFAULT_CONFUSION["fashion_mnist"])
    assert counts.shape == (10, 10) and counts.dtype.kind == "i" and counts.sum() == 10000
    np.testing.assert_array_equal(spec.matrix, counts)
    targets = confusion_targets(counts)
    # The classifier's mistakes: Shirt (6) is mostly confused with T-shirt, Pullover, Coat.
    assert set(np.argsort(targets[6])[-3:]) == {0, 2, 4}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "needs `confusion` counts"),
        ({"confusion": np.ones((3, 3))}, r"expected shape \(4, 4\)"),
        ({"confusion": -np.ones((4, 4))}, "non-negative"),
        ({"confusion": np.ones(4)}, "square"),
    ],
)
def test_confusion_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        add_label_noise(np.arange(8) % 4, 0.2, "confusion", 4, **kwargs)
