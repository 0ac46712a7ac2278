"""keras-metacleaner: MetaCleaner (CVPR 2019) for Keras 3 / TensorFlow.

Train image classifiers on noisy labels: the classifier learns from the
α-weighted mean of N same-label images instead of from single images; at test
time the cleaner is removed and a plain classifier remains.

Subpackages and the two top-level classes are imported on first use (PEP 562),
so that `keras_metacleaner.training.config` (what the tools validate flags
with) loads without importing TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBPACKAGES = (
    "analysis",
    "data",
    "experimental",
    "export",
    "layers",
    "losses",
    "models",
    "training",
    "tuning",
    "visualization",
)
_CLASSES = {"MetaCleaner": "layers", "MetaCleanerModel": "models"}

__all__ = [
    "MetaCleaner",
    "MetaCleanerModel",
    "analysis",
    "data",
    "export",
    "layers",
    "losses",
    "models",
    "training",
    "tuning",
    "visualization",
]


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _CLASSES:
        return getattr(importlib.import_module(f"{__name__}.{_CLASSES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
