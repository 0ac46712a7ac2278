"""keras_metacleaner.data: sources, label noise, preprocessing and class grouping.

Data flows one way: `load(spec)` -> `add_label_noise` / `replace_labels` ->
`group_by_class` (with `preprocessing.train_augment`) -> `MetaCleanerModel.fit`.
"""

from keras_metacleaner.data import preprocessing
from keras_metacleaner.data.grouping import group_by_class
from keras_metacleaner.data.indexed import DecodeErrors, take
from keras_metacleaner.data.info import DatasetInfo
from keras_metacleaner.data.loading import SOURCES, load, parse_spec
from keras_metacleaner.data.noise import NOISE_KINDS, add_label_noise, replace_labels
from keras_metacleaner.data.preprocessing import decode_image, test_transform, train_augment

__all__ = [
    "NOISE_KINDS",
    "SOURCES",
    "DatasetInfo",
    "DecodeErrors",
    "add_label_noise",
    "decode_image",
    "group_by_class",
    "load",
    "parse_spec",
    "preprocessing",
    "replace_labels",
    "take",
    "test_transform",
    "train_augment",
]
