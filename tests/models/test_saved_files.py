"""`model.keras` files saved by earlier versions keep loading, with the same outputs.

`testdata/` holds files written by `testdata/make_old_models.py` at commit
3cea74c, before the experiments (DenseWeighting's remedies, WarmupWeighting,
normalize_member_weights / normalize_subset_weights) left the public API.
"""

import os

import keras
import numpy as np
import pytest

import keras_metacleaner as kmc
from keras_metacleaner import experimental

DATA = os.path.join(os.path.dirname(__file__), "testdata")

CASES = {
    "default": (kmc.MetaCleanerModel, kmc.layers.LabelPosteriorWeighting),
    "warmup_dense_remedies": (kmc.MetaCleanerModel, experimental.WarmupWeighting),
    "normalized_weights": (
        experimental.NormalizedLossMetaCleanerModel,
        kmc.layers.LabelConfidenceWeighting,
    ),
    "loss_reweight": (kmc.MetaCleanerModel, kmc.layers.DenseWeighting),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_old_files_load_with_the_same_outputs(name):
    expected = np.load(os.path.join(DATA, "expected.npz"))
    model = keras.models.load_model(os.path.join(DATA, f"{name}.keras"))
    model_class, weighting_class = CASES[name]
    assert type(model) is model_class and type(model.weighting) is weighting_class
    np.testing.assert_allclose(
        model.predict(expected["images"], verbose=0), expected[f"{name}_probs"], rtol=1e-6
    )
    probabilities, alpha = model.predict_sets(
        expected["sets"], labels=np.array([0, 1]), return_weights=True
    )
    np.testing.assert_allclose(probabilities, expected[f"{name}_set_probs"], rtol=1e-5)
    np.testing.assert_allclose(alpha, expected[f"{name}_alpha"], rtol=1e-5)


def test_old_options_come_back_as_they_were():
    warm = keras.models.load_model(os.path.join(DATA, "warmup_dense_remedies.keras"))
    inner = warm.weighting.weighting
    assert type(inner) is experimental.RemedyDenseWeighting
    assert (inner.output_bias, inner.negative_slope, inner.temperature) == (1.0, 0.1, 2.0)
    assert inner.normalize_inputs and float(warm.weighting.on) == 1.0
    normalized = keras.models.load_model(os.path.join(DATA, "normalized_weights.keras"))
    assert normalized.normalize_member_weights and normalized.normalize_subset_weights
    # Stored by loss_reweight models then, never read in that mode.
    reweight = keras.models.load_model(os.path.join(DATA, "loss_reweight.keras"))
    assert (reweight.member_loss_weight, reweight.subset_loss_weights) == (0.0, None)
