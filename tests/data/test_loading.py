"""Tests for keras_metacleaner.data.loading (the spec parser and load's checks)."""

import pytest

import keras_metacleaner as kmc
from keras_metacleaner.data import parse_spec


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("fashion_mnist", ("fashion_mnist", "", {})),
        ("npz:/tmp/a.npz", ("npz", "/tmp/a.npz", {})),
        ("tfds:cifar10_n?label=worse_label", ("tfds", "cifar10_n", {"label": "worse_label"})),
        ("food101n:/d/n?test=/d/f", ("food101n", "/d/n", {"test": "/d/f"})),
        ("folder:C:/x", ("folder", "C:/x", {})),
    ],
)
def test_parse_spec(spec, expected):
    assert parse_spec(spec) == expected


@pytest.mark.parametrize(
    "spec, message",
    [
        ("mnist", "Unknown dataset spec 'mnist'"),
        ("", "non-empty"),
        ("npz", "needs a target"),
        ("fashion_mnist:/x", "no target"),
        ("tfds:a?x=1&x=2", "twice"),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(ValueError, match=message):
        kmc.data.load(spec)


def test_bad_validation_split():
    with pytest.raises(ValueError, match="validation_split"):
        kmc.data.load("fashion_mnist", validation_split=1.5)
