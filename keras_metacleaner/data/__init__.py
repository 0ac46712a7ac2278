"""keras_metacleaner.data: sources, label noise, preprocessing and class grouping.

Data flows one way: `load(spec)` -> `LoadedData` -> `noise_from_spec(...).apply`
and `LoadedData.with_labels` -> (`split_validation`) -> `group_by_class`
(with `preprocessing.train_augment`) -> `MetaCleanerModel.fit`.
"""

from keras_metacleaner.data import preprocessing
from keras_metacleaner.data.grouping import group_by_class, steps_per_epoch
from keras_metacleaner.data.indexed import DecodeErrors, take
from keras_metacleaner.data.info import DatasetInfo
from keras_metacleaner.data.loaded import LoadedData, from_arrays
from keras_metacleaner.data.loading import load
from keras_metacleaner.data.noise import NOISE_KINDS, add_label_noise, replace_labels
from keras_metacleaner.data.noise_spec import NOISE_TYPES, NoiseSpec, noise_from_spec
from keras_metacleaner.data.preprocessing import decode_image, test_transform, train_augment
from keras_metacleaner.data.registry import SOURCES, Source, check_spec, parse_spec

__all__ = [
    "NOISE_KINDS",
    "NOISE_TYPES",
    "SOURCES",
    "DatasetInfo",
    "DecodeErrors",
    "LoadedData",
    "NoiseSpec",
    "Source",
    "add_label_noise",
    "check_spec",
    "decode_image",
    "from_arrays",
    "group_by_class",
    "load",
    "noise_from_spec",
    "parse_spec",
    "preprocessing",
    "replace_labels",
    "steps_per_epoch",
    "take",
    "test_transform",
    "train_augment",
]
