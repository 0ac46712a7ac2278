"""Tests for the npz: source."""

import numpy as np
import pytest

import keras_metacleaner as kmc


def _write(path, **arrays):
    np.savez(path, **arrays)
    return f"npz:{path}"


def _arrays(n=20, shape=(6, 6)):
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.integers(0, 256, (n, *shape), dtype=np.uint8),
        "y_train": np.arange(n) % 3,
        "x_test": rng.integers(0, 256, (6, *shape), dtype=np.uint8),
        "y_test": np.arange(6) % 3,
    }


def test_npz_uint8_grayscale_with_clean_labels_and_names(tmp_path):
    arrays = _arrays()
    spec = _write(
        tmp_path / "d.npz",
        **arrays,
        y_train_clean=(np.arange(20) + 1) % 3,
        class_names=np.array(["a", "b", "c"]),
    )
    train, test, info = kmc.data.load(spec)
    assert info.class_names == ["a", "b", "c"] and info.num_classes == 3
    assert info.image_shape == (6, 6, 1)
    assert (info.train_size, info.test_size) == (20, 6)
    np.testing.assert_array_equal(info.train_labels, arrays["y_train"])
    np.testing.assert_array_equal(info.train_clean_labels, (np.arange(20) + 1) % 3)
    images, labels = zip(*train.as_numpy_iterator())
    assert images[0].dtype == np.float32
    np.testing.assert_array_equal(np.stack(images)[..., 0], arrays["x_train"].astype("float32"))
    np.testing.assert_array_equal(labels, arrays["y_train"])
    assert len(list(test)) == 6


def test_npz_float_rgb_resized_with_validation_split(tmp_path):
    arrays = _arrays(shape=(6, 6, 3))
    arrays["x_train"] = arrays["x_train"].astype("float32")
    train, _, info = kmc.data.load(
        _write(tmp_path / "d.npz", **arrays), image_size=4, validation_split=0.25
    )
    assert info.image_shape == (4, 4, 3)
    assert info.train_size == 15 and len(list(info.splits["val"])) == 5
    assert info.class_names == ["0", "1", "2"]
    assert len(list(train)) == 15
    ds = kmc.data.group_by_class(train, 2, 2, seed=0)
    assert ds.element_spec[0].shape == (2, 2, 4, 4, 3)


@pytest.mark.parametrize(
    "change, error, message",
    [
        (lambda a: a.pop("y_test"), ValueError, r"d.npz: missing required array\(s\) \['y_test'\]"),
        (
            lambda a: a.update(y_train=np.arange(19)),
            ValueError,
            "x_train has 20 images but y_train has 19",
        ),
        (
            lambda a: a.update(y_train=np.full(20, 0.5)),
            ValueError,
            "y_train: labels must be integers",
        ),
        (lambda a: a.update(y_test=-np.ones(6, int)), ValueError, "y_test: labels must be >= 0"),
        (
            lambda a: a.update(class_names=np.array(["a", "b"])),
            ValueError,
            "out of range for 2 classes",
        ),
        (
            lambda a: a.update(x_test=np.zeros((0, 6, 6)), y_test=np.zeros(0, int)),
            ValueError,
            "test split is empty",
        ),
        (lambda a: a.update(x_test=np.zeros((6, 5, 6))), ValueError, "differ"),
    ],
)
def test_npz_bad_input_names_key(tmp_path, change, error, message):
    arrays = _arrays()
    change(arrays)
    with pytest.raises(error, match=message):
        kmc.data.load(_write(tmp_path / "d.npz", **arrays))


def test_npz_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        kmc.data.load(f"npz:{tmp_path}/nope.npz")


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a.update(x_train=a["x_train"][:, :, :, None, None]), r"x_train: images must be"),
        (lambda a: a.update(x_train=a["x_train"][:, 0]), r"x_train: images must be"),
        (lambda a: a.update(y_train=np.arange(20) % 3 - 1), "y_train: labels must be >= 0"),
        (
            lambda a: a.update(class_names=np.array(["a", "b\nc", "d"])),
            r"class_names: class name 1 is 'b\\nc'; expected a non-empty name on one line",
        ),
        (lambda a: a.update(class_names=np.array(["a", "", "c"])), "class name 1 is ''"),
        (lambda a: a.update(class_names=np.array(["a", "b", "a"])), r"\['a'\] appear more"),
        (
            lambda a: a.update(
                x_train=np.where(
                    np.arange(20)[:, None, None] == 3, np.nan, np.full((20, 6, 6), 9.0)
                )
            ),
            r"x_train: 36 pixel\(s\) are NaN or infinite \(first in image 3",
        ),
        (lambda a: a.update(x_test=np.full((6, 6, 6), np.inf)), "x_test: 216 pixel"),
        (
            lambda a: a.update(x_train=a["x_train"] / 255.0),
            r"x_train: float pixels lie in \[0, 1\].*multiply the arrays by 255",
        ),
    ],
)
def test_npz_bad_data_is_refused_naming_the_file(tmp_path, change, message):
    arrays = _arrays()
    arrays["class_names"] = np.array(["a", "b", "c"])
    change(arrays)
    path = tmp_path / "bad.npz"
    with pytest.raises(ValueError, match=message) as raised:
        kmc.data.load(_write(path, **arrays))
    assert str(path) in str(raised.value)


def test_unit_range_check_spares_raw_dark_and_binary_images(tmp_path):
    arrays = _arrays()
    for x in (np.zeros((20, 6, 6), "float32"), (np.arange(20 * 36).reshape(20, 6, 6) % 2) * 1.0):
        arrays["x_train"] = x
        assert kmc.data.load(_write(tmp_path / "ok.npz", **arrays)).size == 20


@pytest.mark.parametrize("content", [b"not a zip at all", b"\x93NUMPY\x01\x00"])
def test_a_file_that_is_not_an_npz_is_refused_without_mentioning_pickle(tmp_path, content):
    path = tmp_path / "x.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"x.npz: not a valid .npz file") as raised:
        kmc.data.load(f"npz:{path}")
    assert "pickle" not in str(raised.value)


def test_an_npz_holding_objects_is_refused_without_suggesting_pickle(tmp_path):
    arrays = _arrays()
    arrays["class_names"] = np.array(["a", 1, None], dtype=object)
    with pytest.raises(ValueError, match="not a valid .npz file: an array holds Python objects"):
        kmc.data.load(_write(tmp_path / "o.npz", **arrays))
