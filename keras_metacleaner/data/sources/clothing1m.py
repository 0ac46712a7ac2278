"""`clothing1m:ROOT`: Clothing1M (Xiao et al., CVPR 2015).

Layout of the release: `noisy_label_kv.txt` and `clean_label_kv.txt` (lines
`<image key> <label>`, keys like `images/0/00/x.jpg`, relative to ROOT),
`noisy_train_key_list.txt`, `clean_train_key_list.txt`,
`clean_val_key_list.txt`, `clean_test_key_list.txt` (one key per line), and
optionally `category_names_eng.txt` (14 names, one per line).
"""

from __future__ import annotations

import os

import numpy as np

from keras_metacleaner.data.sources import common

NUM_CLASSES = 14
CLASS_NAMES = [
    "T-Shirt",
    "Shirt",
    "Knitwear",
    "Chiffon",
    "Sweater",
    "Hoodie",
    "Windbreaker",
    "Jacket",
    "Downcoat",
    "Suit",
    "Shawl",
    "Dress",
    "Vest",
    "Underwear",
]


def _key_values(path: str, what: str) -> dict[str, int]:
    table = {}
    for number, line in enumerate(common.read_lines(path, what), start=1):
        parts = line.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise ValueError(
                f"{path}:{number}: expected '<image key> <integer label>', got {line!r}."
            )
        label = int(parts[1])
        if not 0 <= label < NUM_CLASSES:
            raise ValueError(f"{path}:{number}: label {label} is outside [0, {NUM_CLASSES}).")
        table[parts[0]] = label
    return table


def load(root: str, options: dict, *, image_size=None, seed: int = 0):
    """`clothing1m:ROOT[?verify=header|none]` -> `LoadedData`.

    Train: the noisy training keys with their noisy labels
    (`info.train_clean_labels`: the clean label where `clean_label_kv.txt`
    has the key, else -1). Test: the clean test keys. `info.splits` holds
    `"clean_train"` (for fine-tuning) and `"val"` (clean validation keys).
    """
    del seed  # nothing is drawn
    options = dict(options)
    verify = common.verify_option(options, f"clothing1m:{root}")
    if options:
        raise ValueError(
            f"clothing1m:{root}: unknown option(s) {sorted(options)}; known: ['verify']."
        )
    root = common.check_path(root, "Clothing1M root", directory=True)

    def file(name):
        return os.path.join(root, name)

    noisy = _key_values(file("noisy_label_kv.txt"), "Clothing1M noisy labels")
    clean = _key_values(file("clean_label_kv.txt"), "Clothing1M clean labels")
    names_file = file("category_names_eng.txt")
    class_names = (
        common.read_lines(names_file, "Clothing1M category names")
        if os.path.isfile(names_file)
        else list(CLASS_NAMES)
    )
    if len(class_names) != NUM_CLASSES:
        raise ValueError(
            f"{names_file}: expected {NUM_CLASSES} class names, got {len(class_names)}."
        )

    def split(list_name, table, table_name):
        listing = file(list_name)
        keys = common.read_lines(listing, f"Clothing1M key list {list_name}")
        missing = [k for k in keys if k not in table]
        if missing:
            raise KeyError(
                f"{listing}: {len(missing)} key(s) have no label in {table_name}, "
                f"e.g. {missing[0]!r}."
            )
        return [file(k) for k in keys], np.asarray([table[k] for k in keys], np.int32), keys

    train_paths, train_labels, train_keys = split(
        "noisy_train_key_list.txt", noisy, "noisy_label_kv.txt"
    )
    train_clean = np.asarray([clean.get(k, -1) for k in train_keys], np.int32)
    extra = {
        "clean_train": split("clean_train_key_list.txt", clean, "clean_label_kv.txt")[:2],
        "val": split("clean_val_key_list.txt", clean, "clean_label_kv.txt")[:2],
    }
    test = split("clean_test_key_list.txt", clean, "clean_label_kv.txt")[:2]
    return common.from_file_lists(
        f"clothing1m:{root}",
        class_names,
        (train_paths, train_labels),
        test,
        image_size,
        extra_splits=extra,
        train_clean_labels=train_clean,
        verify=verify,
    )
