"""Tests for the folder: source."""

import numpy as np
import pytest

import keras_metacleaner as kmc


def _tree(root, image_writer, split="", per_class=(3, 2), ext=".jpg"):
    for c, count in enumerate(per_class):
        for i in range(count):
            image_writer(str(root / split / f"class_{c}" / f"{i}{ext}"), value=40 * c + i, seed=i)


def test_train_and_test_folders(tmp_path, image_writer):
    _tree(tmp_path, image_writer, "train", (3, 4))
    _tree(tmp_path, image_writer, "test", (1, 2), ext=".png")
    train, test, info = kmc.data.load(f"folder:{tmp_path}", image_size=8)
    assert info.class_names == ["class_0", "class_1"]
    assert info.image_shape == (8, 8, 3)
    assert (info.train_size, info.test_size) == (7, 3)
    labels = [int(y) for _, y in train]
    assert labels == [0, 0, 0, 1, 1, 1, 1] == info.train_labels.tolist()
    assert [int(y) for _, y in test] == [0, 1, 1]
    ds = kmc.data.group_by_class(train, 2, 2, seed=0)
    for x, y in ds:
        assert x.shape == (2, 2, 8, 8, 3)
        # class_c images are filled with 40 * c + i: the label matches the pixels.
        np.testing.assert_array_less(
            np.abs(x.numpy().mean(axis=(2, 3, 4)) // 40 - y.numpy()[:, None]), 0.5
        )


def test_test_fraction_holds_out_test_and_keeps_grayscale(tmp_path, image_writer):
    for c in range(2):
        for i in range(5):
            image_writer(str(tmp_path / f"k{c}" / f"{i}.png"), mode="L", size=(6, 6))
    train, test, info = kmc.data.load(f"folder:{tmp_path}?test_fraction=0.2", seed=1)
    assert info.image_shape == (6, 6, 1)
    assert info.train_size == 8 and info.test_size == 2
    assert len(list(test)) == 2
    # The deprecated keyword still works, and means the same here.
    with pytest.warns(DeprecationWarning, match="test_fraction"):
        old = kmc.data.load(f"folder:{tmp_path}", validation_split=0.2, seed=1)
    np.testing.assert_array_equal(
        old.paths, kmc.data.load(f"folder:{tmp_path}?test_fraction=0.2", seed=1).paths
    )


def test_corrupt_file_is_skipped_in_grouping(tmp_path, image_writer, corrupt_writer):
    _tree(tmp_path, image_writer, "train", (4, 4))
    corrupt_writer(str(tmp_path / "train" / "class_0" / "9.jpg"))
    _tree(tmp_path, image_writer, "test", (1, 1))
    train, _, info = kmc.data.load(f"folder:{tmp_path}", image_size=8)
    # 5 + 4 images in subsets of 3: 4 subsets; the one holding the bad file is dropped
    # and a spare subset takes its place, so the epoch keeps the length it declares.
    ds = kmc.data.group_by_class(train, 3, 1, seed=0)
    assert int(ds.cardinality()) == 4
    batches = list(ds)
    assert len(batches) == 4
    for x, y in batches:
        np.testing.assert_array_less(
            np.abs(x.numpy().mean(axis=(2, 3, 4)) // 40 - y.numpy()[:, None]), 0.5
        )
    # Refused at load (header check): counted once, whatever the pipelines do later.
    assert info.skipped_files == 1
    assert info.decode_errors.paths == [str(tmp_path / "train" / "class_0" / "9.jpg")]


def test_folder_errors(tmp_path, image_writer):
    with pytest.raises(FileNotFoundError, match="nothing"):
        kmc.data.load(f"folder:{tmp_path}/nothing")
    _tree(tmp_path, image_writer, "", (2, 2))
    with pytest.raises(ValueError, match=r"test_fraction=0.2"):
        kmc.data.load(f"folder:{tmp_path}")
    for bad in ("0", "1.5", "x"):
        with pytest.raises(ValueError, match="test_fraction must be a number in"):
            kmc.data.load(f"folder:{tmp_path}?test_fraction={bad}")
    with pytest.raises(ValueError, match="verify="):
        kmc.data.load(f"folder:{tmp_path}?test_fraction=0.5&verify=full")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match="no .jpg"):
        kmc.data.load(f"folder:{tmp_path}/empty?test_fraction=0.5")


def test_a_corrupt_file_that_sorts_first_is_skipped_and_counted_once(
    tmp_path, image_writer, corrupt_writer
):
    _tree(tmp_path, image_writer, "train", (3, 3))
    _tree(tmp_path, image_writer, "test", (1, 1))
    first = corrupt_writer(str(tmp_path / "train" / "class_0" / "0000.jpg"))
    (tmp_path / "train" / "class_1" / "00.png").write_bytes(b"")  # empty file
    loaded = kmc.data.load(f"folder:{tmp_path}")
    assert loaded.info.image_shape == (10, 12, 3)  # read from the first readable file
    assert loaded.size == 6 and loaded.info.skipped_files == 2
    assert first not in loaded.paths
    # Iterating every split and grouping twice adds nothing: counted per file, at load.
    for _ in range(2):
        list(loaded.train)
        list(kmc.data.group_by_class(loaded, 2, 2, seed=0))
    assert loaded.info.skipped_files == 2


def test_files_failing_only_when_decoded_are_counted_once_per_file(
    tmp_path, image_writer, corrupt_writer
):
    _tree(tmp_path, image_writer, "train", (3, 3))
    _tree(tmp_path, image_writer, "test", (1, 1))
    bad = corrupt_writer(str(tmp_path / "train" / "class_1" / "9.jpg"))
    loaded = kmc.data.load(f"folder:{tmp_path}?verify=none")
    assert loaded.size == 7 and loaded.info.skipped_files == 0
    for _ in range(3):
        assert sum(1 for _ in loaded.train) == 7  # the declared length holds
    assert loaded.info.skipped_files == 1 and loaded.info.decode_errors.paths == [bad]
    for _ in range(3):
        list(kmc.data.group_by_class(loaded, 1, 1, seed=0))
    assert loaded.info.skipped_files == 1


def test_file_splits_declare_their_length_so_keras_does_not_run_out_of_data(
    tmp_path, image_writer, corrupt_writer
):
    import warnings

    import keras

    _tree(tmp_path, image_writer, "train", (3, 3))
    _tree(tmp_path, image_writer, "test", (2, 2))
    corrupt_writer(str(tmp_path / "train" / "class_0" / "00.jpg"))
    train, test, info = kmc.data.load(f"folder:{tmp_path}", image_size=8)
    assert int(train.cardinality()) == 6 and int(test.cardinality()) == 4
    model = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(2, "softmax")]
    )
    model.compile("sgd", "sparse_categorical_crossentropy")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(train.batch(2), validation_data=test.batch(2), epochs=2, verbose=0)
    assert not [w for w in caught if "ran out of data" in str(w.message)]
