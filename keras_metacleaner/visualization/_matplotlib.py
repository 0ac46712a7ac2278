"""matplotlib is an optional extra: one place that imports it and says how to install it."""

from __future__ import annotations

import os

INSTALL_HINT = "pip install keras-metacleaner[plot]"


def new_figure(width: float, height: float):
    """A matplotlib `Figure` on the Agg canvas (no pyplot state, no display needed).

    Raises:
        ImportError: matplotlib is not installed; the message says how to install it.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(
            f"keras_metacleaner.visualization needs matplotlib: {INSTALL_HINT}"
        ) from e
    return Figure(figsize=(width, height), layout="constrained")


def save(figure, path: str, dpi: int = 110) -> str:
    """Writes `figure` as PNG to `path` (parent directories created); returns `path`."""
    path = os.fspath(path)
    if not path:
        raise ValueError("path must be a file name, got an empty string.")
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    figure.savefig(path, dpi=dpi, format="png")
    return path
