"""Tests for the clothing1m: source, on a tiny tree in the release's format."""

import numpy as np
import pytest

import keras_metacleaner as kmc


def _release(root, image_writer):
    noisy, clean = [], []
    lists = {"noisy_train": [], "clean_train": [], "clean_val": [], "clean_test": []}
    for i in range(24):
        key = f"images/{i % 3}/{i:02d}/{i}.jpg"
        image_writer(str(root / key), size=(9, 7), seed=i)
        label = i % 14
        noisy.append(f"{key} {label}")
        if i < 20:
            lists["noisy_train"].append(key)
        if i % 4 == 0:
            clean.append(f"{key} {(label + 1) % 14}")
            split = ("clean_train", "clean_val", "clean_test")[(i // 4) % 3]
            lists[split].append(key)
    (root / "noisy_label_kv.txt").write_text("\n".join(noisy) + "\n")
    (root / "clean_label_kv.txt").write_text("\n".join(clean) + "\n")
    for name, keys in lists.items():
        (root / f"{name}_key_list.txt").write_text("\n".join(keys) + "\n")


def test_clothing1m_splits(tmp_path, image_writer):
    _release(tmp_path, image_writer)
    train, test, info = kmc.data.load(f"clothing1m:{tmp_path}", image_size=(6, 5))
    assert info.num_classes == 14 and info.class_names[0] == "T-Shirt"
    assert info.image_shape == (6, 5, 3)
    assert info.train_size == 20 and info.test_size == 2
    np.testing.assert_array_equal(info.train_labels, np.arange(20) % 14)
    expected_clean = [((i % 14) + 1) % 14 if i % 4 == 0 else -1 for i in range(20)]
    assert info.train_clean_labels.tolist() == expected_clean
    assert set(info.splits) == {"clean_train", "val"}
    assert len(list(info.splits["clean_train"])) == 2
    assert [int(y) for _, y in test] == [9, 7]  # keys 8 and 20: clean labels 9 and 7
    assert len(list(train)) == 20


def test_clothing1m_errors(tmp_path, image_writer):
    _release(tmp_path, image_writer)
    (tmp_path / "category_names_eng.txt").write_text("a\nb\n")
    with pytest.raises(ValueError, match="category_names_eng.txt: expected 14"):
        kmc.data.load(f"clothing1m:{tmp_path}")
    (tmp_path / "category_names_eng.txt").unlink()
    with open(tmp_path / "clean_test_key_list.txt", "a") as handle:
        handle.write("images/none.jpg\n")
    with pytest.raises(KeyError, match="clean_test_key_list.txt"):
        kmc.data.load(f"clothing1m:{tmp_path}")
    (tmp_path / "noisy_label_kv.txt").write_text("images/a.jpg 99\n")
    with pytest.raises(ValueError, match=r"noisy_label_kv.txt:1: label 99"):
        kmc.data.load(f"clothing1m:{tmp_path}")
