"""keras_metacleaner.data: sources, label noise, preprocessing and class grouping.

Data flows one way: `load(spec)` -> `LoadedData` -> `noise_from_spec(...).apply`
and `LoadedData.with_labels` -> (`split_validation`) -> `group_by_class`
(with `preprocessing.train_augment`) -> `MetaCleanerModel.fit`.

`registry` (the sources and `check_spec`) and `noise_spec` (`noise_from_spec`)
import no TensorFlow: a tool that defers imports (`KMC_DEFER_IMPORTS`, see
`keras_metacleaner`) can validate its dataset and noise flags with them first.
"""

from __future__ import annotations

import importlib
from typing import Any

from keras_metacleaner import _deferred

#: Public name -> the module that defines it (loaded on first use when deferred).
_NAMES = {
    "DatasetInfo": "info",
    "DecodeErrors": "indexed",
    "LoadedData": "loaded",
    "NOISE_KINDS": "noise",
    "NOISE_TYPES": "noise_spec",
    "NoiseSpec": "noise_spec",
    "SOURCES": "registry",
    "Source": "registry",
    "add_label_noise": "noise",
    "check_spec": "registry",
    "decode_image": "preprocessing",
    "from_arrays": "loaded",
    "group_by_class": "grouping",
    "load": "loading",
    "noise_from_spec": "noise_spec",
    "parse_spec": "registry",
    "replace_labels": "noise",
    "steps_per_epoch": "grouping",
    "take": "indexed",
    "test_transform": "preprocessing",
    "train_augment": "preprocessing",
}

__all__ = sorted([*_NAMES, "preprocessing"])


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        value = getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
        globals()[name] = value
        return value
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if not _deferred():
    for _name in _NAMES:
        __getattr__(_name)
