"""Tests for the food101n: source, on a tiny tree in the release's format."""

import numpy as np
import pytest

import keras_metacleaner as kmc

CLASSES = ["apple_pie", "baby_back_ribs", "baklava"]


def _release(root, image_writer):
    lines, verified_train, verified_val = ["class_name/key"], [], []
    for c, name in enumerate(CLASSES):
        for i in range(4):
            key = f"{name}/{c}{i:03d}.jpg"
            image_writer(str(root / "images" / key), value=60 * c, seed=i)
            lines.append(key)
            if i == 0:
                verified_train.append(f"{key}\t1")
            if i == 1:
                verified_train.append(f"{key}\t0")
            if i == 2:
                verified_val.append(f"{key}\t1")
    (root / "meta").mkdir(parents=True, exist_ok=True)
    (root / "meta" / "imagelist.tsv").write_text("\n".join(lines) + "\n")
    header = "class_name/key\tverification_label\n"
    (root / "meta" / "verified_train.tsv").write_text(header + "\n".join(verified_train) + "\n")
    (root / "meta" / "verified_val.tsv").write_text(header + "\n".join(verified_val) + "\n")
    (root / "meta" / "classes.txt").write_text("class_name\n" + "\n".join(CLASSES) + "\n")


def _food101(root, image_writer):
    keys = []
    for c, name in enumerate(CLASSES):
        key = f"{name}/9{c}"
        image_writer(str(root / "images" / f"{key}.jpg"), value=60 * c)
        keys.append(key)
    (root / "meta").mkdir(parents=True, exist_ok=True)
    (root / "meta" / "test.txt").write_text("\n".join(keys) + "\n")


def test_food101n_with_food101_test(tmp_path, image_writer):
    _release(tmp_path / "n", image_writer)
    _food101(tmp_path / "f", image_writer)
    train, test, info = kmc.data.load(f"food101n:{tmp_path}/n?test={tmp_path}/f", image_size=8)
    assert info.class_names == CLASSES
    assert info.train_size == 12 and info.test_size == 3
    np.testing.assert_array_equal(info.train_labels, np.repeat(np.arange(3), 4))
    clean = info.train_clean_labels
    assert clean.tolist() == [0, -1, -1, -1, 1, -1, -1, -1, 2, -1, -1, -1]
    assert [int(y) for _, y in test] == [0, 1, 2]
    assert len(list(info.splits["val"])) == 3
    assert len(list(train)) == 12


def test_food101n_without_test_uses_verified_val(tmp_path, image_writer):
    _release(tmp_path, image_writer)
    _, test, info = kmc.data.load(f"food101n:{tmp_path}")
    assert info.test_size == 3


def test_food101n_errors(tmp_path, image_writer):
    _release(tmp_path, image_writer)
    with open(tmp_path / "meta" / "verified_train.tsv", "a") as handle:
        handle.write("apple_pie/0000.jpg\t7\n")
    with pytest.raises(ValueError, match="verified_train.tsv.*0 or 1"):
        kmc.data.load(f"food101n:{tmp_path}")
    with pytest.raises(FileNotFoundError, match="imagelist.tsv"):
        kmc.data.load(f"food101n:{tmp_path}/images")
