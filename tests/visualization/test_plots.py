import sys

import numpy as np
import pytest
from PIL import Image

from keras_metacleaner import visualization

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _history(epochs=4, alpha=True, noisy_val=True):
    rows = []
    for e in range(epochs):
        row = {
            "epoch": e,
            "stage": "train",
            "loss": 2.0 - 0.3 * e,
            "accuracy": 0.3 + 0.1 * e,
            "val_loss": 1.9 - 0.2 * e,
            "val_accuracy": 0.35 + 0.1 * e,
            "learning_rate": 0.02,
            "seconds": 1.0,
        }
        if noisy_val:
            row["noisy_val_accuracy"] = 0.3 + 0.05 * e
        if alpha:
            row.update(alpha_mean=0.9 - 0.1 * e, alpha_std=0.1, alpha_floor=0.05 * e)
        rows.append(row)
    return rows


def _assert_png(path):
    with open(path, "rb") as f:
        assert f.read(8) == PNG_MAGIC
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("L"), np.float64)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert pixels.std() > 1.0  # not a blank canvas


def _lines(figure):
    return {
        (ax.get_title(), line.get_label()): (line.get_xdata(), line.get_ydata())
        for ax in figure.axes
        for line in ax.get_lines()
        if not line.get_label().startswith("_")
    }


def test_training_curves_writes_a_png(tmp_path):
    path = visualization.plot_training_curves(_history(), str(tmp_path / "sub" / "curves.png"))
    assert path == str(tmp_path / "sub" / "curves.png")
    _assert_png(path)


def test_training_curves_draw_every_logged_series():
    history = _history()
    lines = _lines(visualization.training_curves_figure(history))
    assert set(lines) == {
        ("accuracy", "train (noisy labels)"),
        ("accuracy", "noisy validation"),
        ("accuracy", "test"),
        ("loss", "train"),
        ("loss", "test"),
        ("α statistics", "alpha_mean"),
        ("α statistics", "alpha_floor (share at the floor)"),
    }
    x, y = lines[("accuracy", "test")]
    np.testing.assert_allclose(x, [1, 2, 3, 4])
    np.testing.assert_allclose(y, [row["val_accuracy"] for row in history])
    np.testing.assert_allclose(
        lines[("α statistics", "alpha_floor (share at the floor)")][1],
        [row["alpha_floor"] for row in history],
    )


def test_training_curves_skip_alpha_panel_for_a_baseline_and_overlay_runs():
    figure = visualization.training_curves_figure(
        {"baseline": _history(alpha=False, noisy_val=False), "metacleaner": _history()}
    )
    titles = [ax.get_title() for ax in figure.axes]
    assert titles == ["accuracy", "loss", "α statistics"]
    labels = set(_lines(figure))
    assert ("accuracy", "baseline: test") in labels
    assert ("accuracy", "metacleaner: test") in labels
    assert ("accuracy", "baseline: noisy validation") not in labels
    assert not any(
        label.startswith("baseline") for title, label in labels if title == "α statistics"
    )
    only_baseline = visualization.training_curves_figure(_history(alpha=False))
    assert [ax.get_title() for ax in only_baseline.axes] == ["accuracy", "loss"]


def test_training_curves_count_epochs_across_stages():
    history = _history(3) + [
        {"epoch": 0, "stage": "finetune", "loss": 0.5, "accuracy": 0.8, "val_accuracy": 0.81},
        {"epoch": 1, "stage": "finetune", "loss": 0.4, "accuracy": 0.85, "val_accuracy": 0.82},
    ]
    x, y = _lines(visualization.training_curves_figure(history))[("accuracy", "test")]
    np.testing.assert_allclose(x, [1, 2, 3, 4, 5])
    assert y[-1] == 0.82


@pytest.mark.parametrize(
    "history, match",
    [([], "no epoch rows"), ("rows", "must be a list"), ([{"epoch": 0}], "none of the keys")],
)
def test_training_curves_reject_bad_history(history, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        visualization.plot_training_curves(history, str(tmp_path / "c.png"))


def test_alpha_histograms_split_right_and_wrong(tmp_path):
    rng = np.random.default_rng(0)
    alpha = np.concatenate([rng.normal(0.8, 0.05, 40), rng.normal(0.2, 0.05, 10)])
    right = np.arange(50) < 40
    path = visualization.plot_alpha_histograms(
        {"epoch 1": alpha, "epoch 5": alpha[::-1]}, right, str(tmp_path / "alpha.png")
    )
    _assert_png(path)
    figure = visualization.alpha_histograms_figure({"epoch 1": alpha}, right, bins=10)
    (ax,) = [ax for ax in figure.axes if ax.get_visible()]
    _, labels = ax.get_legend_handles_labels()
    counts = {
        label: sum(p.get_height() for p in container.patches)
        for label, container in zip(labels, ax.containers)
    }
    assert set(counts) == {"right label (n=40)", "wrong label (n=10)"}
    assert all(total > 0 for total in counts.values())


def test_alpha_histograms_reject_mismatched_shapes(tmp_path):
    with pytest.raises(ValueError, match="3 values but is_correct has 2"):
        visualization.plot_alpha_histograms([0.1, 0.2, 0.3], [True, False], str(tmp_path / "a.png"))


def test_subsets_draw_images_bars_and_marks(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.random((3, 4, 8, 8, 1)) * 255
    alpha = np.array([[0.9, 0.9, 0.1, 0.9], [1, 1, 1, 1], [0.2, 0.8, 0.8, 0.8]])
    right = alpha > 0.5
    path = visualization.plot_subsets(
        images,
        alpha,
        str(tmp_path / "subsets.png"),
        labels=[0, 1, 2],
        is_correct=right,
        class_names=["a", "b", "c"],
    )
    _assert_png(path)
    figure = visualization.subsets_figure(images, alpha, labels=[0, 1, 2], is_correct=right)
    image_axes = [ax for ax in figure.axes if ax.images]
    bar_axes = [ax for ax in figure.axes if ax.patches]
    assert len(image_axes) == 12 and len(bar_axes) == 3
    heights = [p.get_height() for p in bar_axes[0].patches]
    np.testing.assert_allclose(heights, alpha[0] / alpha[0].sum())
    marked = [ax.get_title() for ax in image_axes if ax.get_title() == "wrong label"]
    assert len(marked) == int((~right).sum()) == 2


def test_subsets_reject_bad_shapes(tmp_path):
    with pytest.raises(ValueError, match=r"expected \[K, N\] = \(2, 3\)"):
        visualization.plot_subsets(np.zeros((2, 3, 8, 8, 1)), np.ones((2, 4)), str(tmp_path / "s"))


def test_missing_matplotlib_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install keras-metacleaner\[plot\]"):
        visualization.plot_training_curves(_history(), str(tmp_path / "c.png"))
    assert not (tmp_path / "c.png").exists()
