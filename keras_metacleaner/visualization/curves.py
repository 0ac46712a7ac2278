"""Learning curves of a training run: accuracy, loss and α statistics per epoch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from keras_metacleaner.visualization import _matplotlib

# (history key, legend label) per panel; a panel is drawn when one of its keys is logged.
ACCURACY_KEYS = (
    ("accuracy", "train (noisy labels)"),
    ("noisy_val_accuracy", "noisy validation"),
    ("val_accuracy", "test"),
)
LOSS_KEYS = (("loss", "train"), ("val_loss", "test"))
ALPHA_KEYS = (("alpha_mean", "alpha_mean"), ("alpha_floor", "alpha_floor (share at the floor)"))
_STYLES = ("-", "--", ":", "-.")


def _runs(history) -> dict[str, list[dict]]:
    if isinstance(history, Mapping):
        runs = {str(name): list(rows) for name, rows in history.items()}
    elif isinstance(history, Sequence) and not isinstance(history, str):
        runs = {"": list(history)}
    else:
        raise ValueError(
            "history must be a list of epoch rows (dicts, as EpochHistory writes them) or a "
            f"mapping of run names to such lists; got {type(history).__name__}."
        )
    for name, rows in runs.items():
        if not rows:
            raise ValueError(f"history{f' {name!r}' if name else ''} has no epoch rows.")
        for row in rows:
            if not isinstance(row, Mapping):
                raise ValueError(
                    f"history rows must be dicts with per-epoch values; got {type(row).__name__}."
                )
    return runs


def _series(rows: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(epoch number, value) of the rows that logged `key`; epochs count on across stages."""
    xs, ys = [], []
    for position, row in enumerate(rows, start=1):
        value = row.get(key)
        if value is not None and np.isfinite(value):
            xs.append(position)
            ys.append(float(value))
    return np.asarray(xs), np.asarray(ys)


def _stage_changes(rows: list[dict]) -> list[tuple[float, str]]:
    changes = []
    for position in range(1, len(rows)):
        if rows[position].get("stage") != rows[position - 1].get("stage"):
            changes.append((position + 0.5, str(rows[position].get("stage"))))
    return changes


def training_curves_figure(history, title: str | None = None):
    """The figure `plot_training_curves` saves (for notebooks that want to show or edit it).

    Args:
        history: see `plot_training_curves`.
        title: figure title.

    Returns:
        A matplotlib `Figure`.
    """
    runs = _runs(history)
    panels = [("accuracy", ACCURACY_KEYS), ("loss", LOSS_KEYS), ("α statistics", ALPHA_KEYS)]
    panels = [
        (name, keys)
        for name, keys in panels
        if any(
            row.get(key) is not None for rows in runs.values() for row in rows for key, _ in keys
        )
    ]
    if not panels:
        raise ValueError(
            "history holds none of the keys "
            f"{[k for _, keys in (('', ACCURACY_KEYS), ('', LOSS_KEYS)) for k, _ in keys]}."
        )
    figure = _matplotlib.new_figure(4.2 * len(panels), 3.4)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    colors = {key: f"C{i}" for i, (key, _) in enumerate(ACCURACY_KEYS + LOSS_KEYS + ALPHA_KEYS)}
    for ax, (panel, keys) in zip(axes, panels):
        for run_index, (run, rows) in enumerate(runs.items()):
            for key, label in keys:
                xs, ys = _series(rows, key)
                if len(xs) == 0:
                    continue
                name = f"{run}: {label}" if run else label
                ax.plot(
                    xs,
                    ys,
                    _STYLES[run_index % len(_STYLES)],
                    color=colors[key],
                    marker="o" if len(xs) < 12 else None,
                    markersize=3,
                    label=name,
                )
            for x, stage in _stage_changes(rows):
                ax.axvline(x, color="0.6", linewidth=0.8)
                ax.annotate(
                    stage,
                    (x, 1.0),
                    xycoords=("data", "axes fraction"),
                    fontsize=7,
                    ha="left",
                    va="top",
                    color="0.4",
                )
        ax.set_title(panel)
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        if panel != "loss":
            ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        figure.suptitle(title)
    return figure


def plot_training_curves(history, path: str, title: str | None = None) -> str:
    """Draws accuracy, loss and (for MetaCleaner) α statistics per epoch into a PNG.

    The accuracy panel shows the accuracy on the noisy training labels, on
    the noisy validation split (`noisy_val_accuracy`, when the run held one
    out) and on the test set (`val_accuracy`); the α panel shows
    `alpha_mean` and `alpha_floor`, the share of α stuck at the weighting's
    lowest value (a weighting whose floor share goes to 1 has collapsed into
    a plain mean). Epochs count on across stages; a stage change (e.g. to
    `finetune`) is a vertical line.

    Args:
        history: epoch rows as `keras_metacleaner.training.EpochHistory`
            writes them (`results.json["history"]`): dicts with `epoch`,
            `stage`, `loss`, `accuracy`, `val_accuracy`, ... Or a mapping
            `{run name: rows}` to overlay several runs (one line style each).
        path: the PNG file to write (parent directories are created).
        title: figure title.

    Returns:
        `path`.

    Raises:
        ImportError: matplotlib is missing (`pip install keras-metacleaner[plot]`).
        ValueError: `history` is empty or holds none of the plotted keys.

    Example:

    >>> import os, tempfile
    >>> rows = [{"epoch": 0, "stage": "train", "accuracy": 0.5, "val_accuracy": 0.6,
    ...          "loss": 1.2, "alpha_mean": 0.8, "alpha_floor": 0.1},
    ...         {"epoch": 1, "stage": "train", "accuracy": 0.7, "val_accuracy": 0.7,
    ...          "loss": 0.9, "alpha_mean": 0.7, "alpha_floor": 0.2}]
    >>> path = plot_training_curves(rows, os.path.join(tempfile.mkdtemp(), "curves.png"))
    >>> os.path.getsize(path) > 0
    True
    """
    return _matplotlib.save(training_curves_figure(history, title=title), path)
