"""keras-metacleaner: MetaCleaner (CVPR 2019) for Keras 3 / TensorFlow.

Train image classifiers on noisy labels: the classifier learns from the
α-weighted mean of N same-label images instead of from single images; at test
time the cleaner is removed and a plain classifier remains.
"""

from keras_metacleaner import analysis, data, export, layers, models, training, tuning
from keras_metacleaner.layers import MetaCleaner
from keras_metacleaner.models import MetaCleanerModel

__version__ = "0.1.0"

__all__ = [
    "MetaCleaner",
    "MetaCleanerModel",
    "analysis",
    "data",
    "export",
    "layers",
    "models",
    "training",
    "tuning",
]
