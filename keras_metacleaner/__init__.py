"""keras-metacleaner: MetaCleaner (CVPR 2019) for Keras 3 / TensorFlow.

Train image classifiers on noisy labels: the classifier learns from the
α-weighted mean of N same-label images instead of from single images; at test
time the cleaner is removed and a plain classifier remains.

`import keras_metacleaner` imports every subpackage, so every layer, model,
loss and schedule is registered with Keras and `keras.models.load_model` finds
them. A command-line tool that wants to validate its flags before TensorFlow
starts sets `KMC_DEFER_IMPORTS = True` in its own `__main__` module before the
first import: subpackages then load on first use (PEP 562), and the tool imports
what it needs (which registers it) once its input is checked.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

__version__ = "0.1.0"

#: Imported by `import keras_metacleaner` (experimental too: it registers the
#: serialized names of the classes that moved there, so old files load).
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

# experimental is imported (for old files) but not part of the public namespace.
__all__ = sorted([*_CLASSES, *(name for name in _SUBPACKAGES if name != "experimental")])


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _CLASSES:
        return getattr(importlib.import_module(f"{__name__}.{_CLASSES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def _deferred() -> bool:
    """True when the running program asked to load subpackages on first use."""
    return bool(getattr(sys.modules.get("__main__"), "KMC_DEFER_IMPORTS", False))


if not _deferred():
    # training imports its modules lazily itself; its schedule module registers
    # the optimizer and schedules that a compiled model.keras names.
    for _name in (*_SUBPACKAGES, "training.schedule"):
        importlib.import_module(f"{__name__}.{_name}")
