"""Tests for keras_metacleaner.data.loading: `load` returns a LoadedData.

Spec parsing is tested in test_registry.py.
"""

import numpy as np
import pytest

import keras_metacleaner as kmc


def _npz(path, n=12):
    x = np.random.default_rng(0).integers(0, 256, (n, 4, 4), dtype=np.uint8)
    np.savez(path, x_train=x, y_train=np.arange(n) % 3, x_test=x[:3], y_test=np.arange(3))
    return f"npz:{path}"


def test_load_returns_loaded_data_with_the_fast_view(tmp_path):
    loaded = kmc.data.load(_npz(tmp_path / "d.npz"))
    assert isinstance(loaded, kmc.data.LoadedData)
    assert loaded.view is not None and loaded.size == 12
    train, test, info = loaded
    assert info.train_size == 12 and info.test_size == 3 and info.skipped_files == 0


def test_deprecated_validation_split_still_holds_out_a_split(tmp_path):
    spec = _npz(tmp_path / "d.npz")
    with pytest.warns(DeprecationWarning, match="split_validation"):
        loaded = kmc.data.load(spec, validation_split=0.25, seed=1)
    assert loaded.size == 9 and loaded.info.train_size == 9
    assert int(loaded.info.splits["val"].cardinality()) == 3
    kept, _ = kmc.data.load(spec).split_validation(0.25, seed=1)
    np.testing.assert_array_equal(loaded.indices, kept.indices)


@pytest.mark.parametrize("fraction", [1.5, -0.1, "x"])
def test_bad_validation_split(fraction):
    with pytest.raises(ValueError, match="validation_split"):
        kmc.data.load("fashion_mnist", validation_split=fraction)
