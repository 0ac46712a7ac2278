"""`food101n:ROOT`: Food-101N (Lee et al., CVPR 2018), tested on Food-101's test split.

Layout of the release: `ROOT/meta/imagelist.tsv` (header, then
`<class>/<file>.jpg` per line: the 310k noisy training images, labelled by
their folder), `ROOT/meta/verified_train.tsv` and `ROOT/meta/verified_val.tsv`
(header, then `<class>/<file>.jpg<TAB>0|1`: whether a human found the label
right), optionally `ROOT/meta/classes.txt`, and `ROOT/images/<class>/<file>`.
"""

from __future__ import annotations

import os

import numpy as np

from keras_metacleaner.data.sources import common, folder


def _entries(path: str, what: str, columns: int) -> list[list[str]]:
    lines = common.read_lines(path, what)
    rows = [line.split("\t") for line in lines[1:]]  # the first line is a header
    for number, row in enumerate(rows, start=2):
        if len(row) < columns or "/" not in row[0]:
            raise ValueError(
                f"{path}:{number}: expected '<class>/<file>'"
                f"{' + TAB + 0|1' if columns > 1 else ''}, got {lines[number - 1]!r}."
            )
    return rows


def _food101_test(root: str, class_names: list[str]):
    """Food-101 test split from `meta/test.txt` + `images/`, or a class folder."""
    listing = os.path.join(root, "meta", "test.txt")
    if os.path.isfile(listing):
        ids = {name: i for i, name in enumerate(class_names)}
        paths, labels = [], []
        for number, key in enumerate(common.read_lines(listing, "Food-101 test list"), start=1):
            name = key.split("/")[0]
            if name not in ids:
                raise ValueError(f"{listing}:{number}: unknown class {name!r} in {key!r}.")
            file = key if key.lower().endswith(common.IMAGE_EXTENSIONS) else key + ".jpg"
            paths.append(os.path.join(root, "images", file))
            labels.append(ids[name])
        return paths, np.asarray(labels, np.int32)
    _, paths, labels = folder.scan(root, class_names)
    return paths, labels


def load(root: str, options: dict, *, image_size=None, seed: int = 0):
    """`food101n:ROOT[?test=FOOD101_ROOT_OR_FOLDER&verify=header|none]` -> `LoadedData`.

    Train: every image of `imagelist.tsv` with its noisy (folder) label.
    `info.train_clean_labels` is the label where `verified_train.tsv` marks
    it right, and -1 where it is marked wrong or unverified (the true class
    of a wrong one is unknown): mask with `>= 0`. `info.splits["val"]` holds
    the images of `verified_val.tsv` (noisy labels) and
    `info.splits["verified_val_clean"]` those of them marked right. Test: the
    Food-101 test split named by `test=`; without it, the verified-right
    validation images.
    """
    del seed  # nothing is drawn
    options = dict(options)
    verify = common.verify_option(options, f"food101n:{root}")
    unknown = sorted(set(options) - {"test"})
    if unknown:
        raise ValueError(
            f"food101n:{root}: unknown option(s) {unknown}; known: ['test', 'verify']."
        )
    root = common.check_path(root, "Food-101N root", directory=True)
    meta = os.path.join(root, "meta")
    rows = _entries(os.path.join(meta, "imagelist.tsv"), "Food-101N image list", 1)
    classes_file = os.path.join(meta, "classes.txt")
    if os.path.isfile(classes_file):
        class_names = common.read_lines(classes_file, "Food-101N class list")
        if class_names and class_names[0] == "class_name":
            class_names = class_names[1:]
    else:
        class_names = sorted({row[0].split("/")[0] for row in rows})
    ids = {name: i for i, name in enumerate(class_names)}

    def parse(rows, where):
        keys, labels = [], []
        for row in rows:
            name = row[0].split("/")[0]
            if name not in ids:
                raise ValueError(f"{where}: unknown class {name!r} in {row[0]!r}.")
            keys.append(row[0])
            labels.append(ids[name])
        return keys, np.asarray(labels, np.int32)

    keys, labels = parse(rows, os.path.join(meta, "imagelist.tsv"))
    paths = [os.path.join(root, "images", key) for key in keys]
    clean = np.full(labels.shape, -1, np.int32)
    position = {key: i for i, key in enumerate(keys)}
    verified = {}
    for split in ("train", "val"):
        file = os.path.join(meta, f"verified_{split}.tsv")
        verified[split] = (
            _entries(file, f"Food-101N verified_{split}", 2) if os.path.isfile(file) else []
        )
        for row in verified[split]:
            if row[1].strip() not in ("0", "1"):
                raise ValueError(f"{file}: verification label must be 0 or 1, got {row[1]!r}.")
    for row in verified["train"]:
        if row[1].strip() == "1" and row[0] in position:
            clean[position[row[0]]] = labels[position[row[0]]]

    extra = {}
    if verified["val"]:
        val_keys, val_labels = parse(verified["val"], "verified_val.tsv")
        right = np.array([row[1].strip() == "1" for row in verified["val"]])
        extra["val"] = ([os.path.join(root, "images", k) for k in val_keys], val_labels)
        if right.any():
            extra["verified_val_clean"] = (
                [os.path.join(root, "images", k) for k, r in zip(val_keys, right) if r],
                val_labels[right],
            )
    if "test" in options:
        test = _food101_test(common.check_path(options["test"], "Food-101 test root"), class_names)
    elif "verified_val_clean" in extra:
        test = extra["verified_val_clean"]
    else:
        raise ValueError(
            f"food101n:{root}: no test split; pass ?test=<Food-101 root with meta/test.txt> "
            "(the paper's protocol) or provide meta/verified_val.tsv."
        )
    return common.from_file_lists(
        f"food101n:{root}",
        class_names,
        (paths, labels),
        test,
        image_size,
        extra_splits=extra,
        train_clean_labels=clean,
        verify=verify,
    )
