"""Pictures of α: its distribution for right and wrong labels, and subsets as image grids."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from keras_metacleaner.visualization import _matplotlib

RIGHT_COLOR = "tab:blue"
WRONG_COLOR = "tab:red"


def _snapshots(alpha, is_correct) -> list[tuple[str, np.ndarray, np.ndarray]]:
    if isinstance(alpha, Mapping):
        names = [str(k) for k in alpha]
        alphas = list(alpha.values())
    else:
        names, alphas = [""], [alpha]
    if isinstance(is_correct, Mapping):
        if list(map(str, is_correct)) != names:
            raise ValueError(
                f"is_correct has the keys {list(is_correct)}; expected those of alpha {names}."
            )
        corrects = list(is_correct.values())
    else:
        corrects = [is_correct] * len(alphas)
    out = []
    for name, a, c in zip(names, alphas, corrects):
        a = np.asarray(a, np.float64).reshape(-1)
        c = np.asarray(c).reshape(-1)
        if a.shape != c.shape:
            raise ValueError(
                f"alpha{f' {name!r}' if name else ''} has {a.size} values but is_correct has "
                f"{c.size}; expected one flag per α."
            )
        if a.size == 0:
            raise ValueError(f"alpha{f' {name!r}' if name else ''} is empty.")
        keep = np.isfinite(a)
        out.append((name, a[keep], c[keep].astype(bool)))
    return out


def alpha_histograms_figure(alpha, is_correct, bins: int = 30, title: str | None = None):
    """The figure `plot_alpha_histograms` saves; same arguments, returns a matplotlib `Figure`."""
    snapshots = _snapshots(alpha, is_correct)
    values = np.concatenate([a for _, a, _ in snapshots])
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    if high - low < 1e-6:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, int(bins) + 1)
    columns = min(len(snapshots), 4)
    rows = -(-len(snapshots) // columns)
    figure = _matplotlib.new_figure(3.6 * columns, 2.9 * rows)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, (name, a, correct) in zip(axes, snapshots):
        for mask, label, color in (
            (correct, "right label", RIGHT_COLOR),
            (~correct, "wrong label", WRONG_COLOR),
        ):
            if mask.any():
                ax.hist(
                    a[mask],
                    bins=edges,
                    density=True,
                    alpha=0.55,
                    color=color,
                    label=f"{label} (n={int(mask.sum())})",
                )
        ax.set_title(name or "α", fontsize=9)
        ax.set_xlabel("α")
        ax.set_yticks([])
        ax.legend(fontsize=7)
    for ax in axes[len(snapshots) :]:
        ax.set_visible(False)
    if title:
        figure.suptitle(title)
    return figure


def plot_alpha_histograms(
    alpha, is_correct, path: str, bins: int = 30, title: str | None = None
) -> str:
    """Histograms of α for members whose label is right and for those whose label is wrong.

    A weighting that works puts the wrong labels' α lower than the right
    ones'; one that has collapsed piles both at the same value. Pass a
    mapping to draw one panel per snapshot (e.g. per epoch) on shared bins.

    Args:
        alpha: α (or normalised α) per member, any shape; or a mapping
            `{panel title: α}`.
        is_correct: booleans of the same shape (True = the training label is
            right); or a mapping with the keys of `alpha`.
        path: the PNG file to write.
        bins: histogram bins (shared by all panels).
        title: figure title.

    Returns:
        `path`.

    Raises:
        ImportError: matplotlib is missing (`pip install keras-metacleaner[plot]`).
        ValueError: shapes differ or `alpha` is empty.

    Example:

    >>> import os, tempfile
    >>> alpha = np.array([0.9, 0.8, 0.2, 0.95, 0.1])
    >>> right = np.array([True, True, False, True, False])
    >>> path = plot_alpha_histograms(alpha, right, os.path.join(tempfile.mkdtemp(), "alpha.png"))
    """
    return _matplotlib.save(alpha_histograms_figure(alpha, is_correct, bins, title), path)


def _display(image: np.ndarray) -> tuple[np.ndarray, str | None]:
    image = np.asarray(image, np.float64)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    low, high = image.min(), image.max()
    if high > 1.0 or low < 0.0:  # raw pixels (0-255) or standardised: stretch to [0, 1]
        image = (image - low) / max(high - low, 1e-12)
    return np.clip(image, 0, 1), ("gray" if image.ndim == 2 else None)


def subsets_figure(
    images,
    alpha,
    labels=None,
    is_correct=None,
    class_names: Sequence[str] | None = None,
    max_subsets: int = 8,
    title: str | None = None,
):
    """The figure `plot_subsets` saves; same arguments, returns a matplotlib `Figure`."""
    images = np.asarray(images)
    alpha = np.asarray(alpha, np.float64)
    if images.ndim not in (4, 5):
        raise ValueError(
            f"images must be subsets [K, N, H, W] or [K, N, H, W, C]; got shape {images.shape}."
        )
    if alpha.shape != images.shape[:2]:
        raise ValueError(
            f"alpha has shape {alpha.shape}; expected [K, N] = {images.shape[:2]}, one α per image."
        )
    if is_correct is not None:
        is_correct = np.asarray(is_correct, bool)
        if is_correct.shape != alpha.shape:
            raise ValueError(
                f"is_correct has shape {is_correct.shape}; expected [K, N] = {alpha.shape}."
            )
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        if labels.shape[0] != images.shape[0]:
            raise ValueError(f"{labels.shape[0]} labels given for {images.shape[0]} subsets.")
    k = min(len(images), int(max_subsets))
    if k < 1:
        raise ValueError("images holds no subset to draw.")
    n = images.shape[1]
    share = alpha / np.maximum(alpha.sum(axis=1, keepdims=True), 1e-12)
    figure = _matplotlib.new_figure(1.15 * n + 0.6, 1.75 * k)
    grid = figure.add_gridspec(2 * k, n, height_ratios=[1.0, 0.45] * k)
    for row in range(k):
        for col in range(n):
            ax = figure.add_subplot(grid[2 * row, col])
            pixels, cmap = _display(images[row, col])
            ax.imshow(pixels, cmap=cmap, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            wrong = is_correct is not None and not is_correct[row, col]
            for spine in ax.spines.values():
                spine.set_edgecolor(WRONG_COLOR if wrong else "0.7")
                spine.set_linewidth(3 if wrong else 0.5)
            if wrong:
                ax.set_title("wrong label", fontsize=7, color=WRONG_COLOR, pad=2)
            if col == 0 and labels is not None:
                name = class_names[labels[row]] if class_names is not None else str(labels[row])
                ax.set_ylabel(f"label: {name}", fontsize=8)
        bars = figure.add_subplot(grid[2 * row + 1, :])
        colors = [
            WRONG_COLOR if is_correct is not None and not is_correct[row, col] else RIGHT_COLOR
            for col in range(n)
        ]
        bars.bar(np.arange(n), share[row], width=0.5, color=colors)
        bars.axhline(1.0 / n, color="0.5", linewidth=0.8, linestyle="--")
        bars.set_xlim(-0.5, n - 0.5)
        bars.set_ylim(0, max(2.0 / n, 1.1 * float(share[row].max())))
        bars.set_xticks([])
        bars.tick_params(labelsize=6)
        if row == 0:
            bars.set_ylabel("α / Σα", fontsize=7)
    if title:
        figure.suptitle(title)
    return figure


def plot_subsets(
    images,
    alpha,
    path: str,
    labels=None,
    is_correct=None,
    class_names: Sequence[str] | None = None,
    max_subsets: int = 8,
    title: str | None = None,
) -> str:
    """Subsets as rows of images, each with its normalised α as a bar (the paper's Figure 5).

    Each row is one subset of N images sharing a (noisy) label; under it, a
    bar per image shows `α_i / Σ_j α_j`, its share of the hallucinated
    feature (the dashed line is the plain mean's 1/N). Images whose label
    is wrong get a red frame and a red bar.

    Args:
        images: `[K, N, H, W, C]` (or `[K, N, H, W]`) subsets; raw pixels are
            stretched to [0, 1] for display.
        alpha: `[K, N]` α of each image (as `MetaCleanerModel.predict_sets(...,
            return_weights=True)` returns it).
        path: the PNG file to write.
        labels: optional `[K]` label of each subset (printed at the row).
        is_correct: optional `[K, N]` booleans, False marks a wrong label.
        class_names: optional names for `labels`.
        max_subsets: draw at most this many subsets (the first ones).
        title: figure title.

    Returns:
        `path`.

    Raises:
        ImportError: matplotlib is missing (`pip install keras-metacleaner[plot]`).
        ValueError: shapes do not fit together.

    Example:

    >>> import os, tempfile
    >>> images = np.random.default_rng(0).random((2, 3, 8, 8, 1))
    >>> alpha = np.array([[0.9, 0.8, 0.1], [0.5, 0.5, 0.5]])
    >>> right = np.array([[True, True, False], [True, True, True]])
    >>> path = plot_subsets(images, alpha, os.path.join(tempfile.mkdtemp(), "subsets.png"),
    ...                     labels=[3, 1], is_correct=right)
    """
    figure = subsets_figure(images, alpha, labels, is_correct, class_names, max_subsets, title)
    return _matplotlib.save(figure, path)
