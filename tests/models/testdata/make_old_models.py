"""Writes model.keras files with the code of commit 3cea74c (before experiments left the API)."""

import os
import sys

import keras
import numpy as np

import keras_metacleaner as kmc

out = sys.argv[1]  # run from a checkout of 3cea74c: python make_old_models.py DIR
keras.utils.set_random_seed(0)
images = np.random.default_rng(0).uniform(0, 255, (5, 8, 8, 1)).astype("float32")
sets = np.random.default_rng(1).uniform(0, 255, (2, 3, 8, 8, 1)).astype("float32")


def backbone():
    inputs = keras.Input((8, 8, 1), name="images")
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(16, activation="relu")(x), name="tiny")


models = {
    "default": kmc.MetaCleanerModel(backbone(), 3, 3, hidden_units=8, seed=0),
    "warmup_dense_remedies": kmc.MetaCleanerModel(
        backbone(),
        3,
        3,
        hidden_units=8,
        seed=0,
        weighting=kmc.layers.WarmupWeighting(
            kmc.layers.DenseWeighting(
                3, 8, output_bias=1.0, negative_slope=0.1, temperature=2.0, normalize_inputs=True
            ),
            3,
            8,
        ),
        member_loss_weight=0.0,
        subset_loss_weights=None,
    ),
    "normalized_weights": kmc.MetaCleanerModel(
        backbone(),
        3,
        3,
        hidden_units=8,
        seed=0,
        weighting="label_confidence",
        normalize_member_weights=True,
        normalize_subset_weights=True,
    ),
    "loss_reweight": kmc.MetaCleanerModel(
        backbone(), 3, 3, hidden_units=8, seed=0, weighting="fc_fc_relu_sig", mode="loss_reweight"
    ),
}
models["warmup_dense_remedies"].weighting.on.assign(1.0)
arrays = {"images": images, "sets": sets}
for name, model in models.items():
    model.save(os.path.join(out, f"{name}.keras"))
    arrays[f"{name}_probs"] = model.predict(images, verbose=0)
    p, a = model.predict_sets(sets, labels=np.array([0, 1]), return_weights=True)
    arrays[f"{name}_set_probs"], arrays[f"{name}_alpha"] = p, a
np.savez(os.path.join(out, "expected.npz"), **arrays)
