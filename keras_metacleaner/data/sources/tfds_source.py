"""`tfds:NAME?label=KEY&...`: a TensorFlow Datasets builder (already prepared)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_metacleaner.data import preprocessing
from keras_metacleaner.data.info import DatasetInfo
from keras_metacleaner.data.loaded import LoadedData
from keras_metacleaner.data.sources import common

OPTIONS = ("label", "test_label", "clean_label", "image", "train", "test", "data_dir", "download")


def _labels(builder, split: str, key: str) -> np.ndarray:
    import tensorflow_datasets as tfds

    decoders = {name: tfds.decode.SkipDecoding() for name in _image_keys(builder)}
    ds = builder.as_dataset(split=split, decoders=decoders or None, shuffle_files=False)
    ds = ds.map(lambda example: example[key]).batch(4096)
    return np.concatenate([batch for batch in ds.as_numpy_iterator()] or [np.zeros(0, np.int64)])


def _image_keys(builder) -> list[str]:
    import tensorflow_datasets as tfds

    return [k for k, v in builder.info.features.items() if isinstance(v, tfds.features.Image)]


def load(name: str, options: dict, *, image_size=None, seed: int = 0):
    """`tfds:NAME` -> `LoadedData` (a stream: TFDS splits have no random access).

    Options: `label` (training label key, default `label`), `test_label`
    (default `label`, the clean key, when the test split has it), `clean_label`
    (true-label key for `info.train_clean_labels`; default `label` when it
    differs from `label=`), `image` (default `image`), `train` / `test` (split
    names, default `train` / `test`), `data_dir`, `download` (`1` to prepare
    the data first; off by default: this library never downloads unasked).
    """
    import tensorflow_datasets as tfds

    del seed  # nothing is drawn
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"tfds:{name}: unknown option(s) {unknown}; known: {list(OPTIONS)}.")
    label_key = options.get("label", "label")
    image_key = options.get("image", "image")
    train_split, test_split = options.get("train", "train"), options.get("test", "test")
    try:
        builder = tfds.builder(name, data_dir=options.get("data_dir"))
        if options.get("download", "0") not in ("0", "false", "False", ""):
            builder.download_and_prepare()
    except tfds.core.registered.DatasetNotFoundError as error:
        raise ValueError(f"Unknown TFDS dataset {name!r}: {error}") from error
    features = builder.info.features
    for role, key in (("label", label_key), ("image", image_key)):
        if key not in features:
            raise KeyError(
                f"tfds:{name}: no feature {key!r} for the {role}; features are {sorted(features)}."
            )
    test_key = options.get("test_label", "label" if "label" in features else label_key)
    clean_key = options.get(
        "clean_label", "label" if label_key != "label" and "label" in features else None
    )
    num_classes = features[label_key].num_classes
    class_names = list(features[label_key].names)

    try:
        train_labels = _labels(builder, train_split, label_key)
        test_labels = _labels(builder, test_split, test_key)
    except AssertionError as error:
        raise FileNotFoundError(
            f"tfds:{name} is not prepared in {builder.data_dir!r} ({error}); prepare it "
            "(tfds build, or download=1) or pass data_dir=."
        ) from error
    train_labels = common.check_labels(train_labels, num_classes, f"tfds:{name} {label_key}")
    test_labels = common.check_labels(test_labels, num_classes, f"tfds:{name} {test_key}")
    common.check_nonempty(train_labels.size, f"tfds:{name}: the {train_split} split")
    common.check_nonempty(test_labels.size, f"tfds:{name}: the {test_split} split")
    clean = None
    if clean_key:
        clean = common.check_labels(
            _labels(builder, train_split, clean_key), num_classes, clean_key
        )

    size = common.image_size_tuple(image_size)
    image_shape = tuple(features[image_key].shape)
    if size is not None:
        image_shape = (*size, image_shape[-1])

    def dataset(split, key):
        ds = builder.as_dataset(split=split, shuffle_files=False)

        def convert(example):
            image = tf.cast(example[image_key], tf.float32)
            if size is not None:
                image = preprocessing.resize(image, size)
            return image, tf.cast(example[key], tf.int32)

        return ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE)

    train, test = dataset(train_split, label_key), dataset(test_split, test_key)
    train = train.apply(tf.data.experimental.assert_cardinality(int(train_labels.size)))
    test = test.apply(tf.data.experimental.assert_cardinality(int(test_labels.size)))
    info = DatasetInfo(
        name=f"tfds:{name}",
        num_classes=num_classes,
        class_names=common.check_class_names(class_names, f"tfds:{name} class names"),
        image_shape=image_shape,
        train_size=int(train_labels.size),
        test_size=int(test_labels.size),
        train_labels=train_labels,
        train_clean_labels=clean,
    )
    return LoadedData(info, test, train_labels, train=train, clean_labels=clean)
