"""Plots of training runs and of α (needs matplotlib: `pip install keras-metacleaner[plot]`).

Each `plot_*` function writes a PNG and returns its path; the matching
`*_figure` function returns the matplotlib `Figure` instead. matplotlib is
imported only when a plot is drawn, so `import keras_metacleaner` works
without it.
"""

from keras_metacleaner.visualization._matplotlib import INSTALL_HINT
from keras_metacleaner.visualization.alpha import (
    alpha_histograms_figure,
    plot_alpha_histograms,
    plot_subsets,
    subsets_figure,
)
from keras_metacleaner.visualization.curves import plot_training_curves, training_curves_figure

__all__ = [
    "INSTALL_HINT",
    "alpha_histograms_figure",
    "plot_alpha_histograms",
    "plot_subsets",
    "plot_training_curves",
    "subsets_figure",
    "training_curves_figure",
]
