"""Tests for the fashion_mnist source (IDX files, as Debian's package and keras ship them)."""

import gzip

import numpy as np
import pytest

import keras_metacleaner as kmc
from keras_metacleaner.data.sources import fashion_mnist


def _write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_reads_idx_files_from_a_directory(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (30, 28, 28)),
        "y_train": np.arange(30) % 10,
        "x_test": rng.integers(0, 256, (10, 28, 28)),
        "y_test": np.arange(10),
    }
    for key, name in fashion_mnist.FILES.items():
        _write_idx(tmp_path / name, arrays[key])
    train, test, info = kmc.data.load(f"fashion_mnist?dir={tmp_path}")
    assert info.class_names[0] == "T-shirt/top" and info.num_classes == 10
    assert info.image_shape == (28, 28, 1) and info.train_size == 30
    first = next(iter(train))
    np.testing.assert_array_equal(first[0].numpy()[..., 0], arrays["x_train"][0])
    np.testing.assert_array_equal(info.train_labels, arrays["y_train"])


def test_bad_idx_file_and_missing_directory(tmp_path):
    (tmp_path / "x.gz").write_bytes(gzip.compress(b"\x01\x02\x03\x04"))
    with pytest.raises(ValueError, match="x.gz"):
        fashion_mnist.read_idx(str(tmp_path / "x.gz"))
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.gz"):
        kmc.data.load(f"fashion_mnist?dir={tmp_path}")


@pytest.mark.skipif(fashion_mnist.find_directory() is None, reason="no local Fashion-MNIST")
def test_local_fashion_mnist_is_found_without_a_path():
    _, _, info = kmc.data.load("fashion_mnist")
    assert (info.train_size, info.test_size) == (60000, 10000)
    np.testing.assert_array_equal(info.class_counts(), np.full(10, 6000))
