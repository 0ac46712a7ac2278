import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

import keras_metacleaner as kmc


def _toy_dataset(n=96, classes=3):
    rng = np.random.default_rng(0)
    y = (np.arange(n) % classes).astype("int32")
    x = (rng.random((n, 8, 8, 1)) * 40 + y[:, None, None, None] * 80).astype("float32")
    return tf.data.Dataset.from_tensor_slices((x, y)), x, y


def test_search_tries_each_subset_size_and_regroups_the_data(tmp_path):
    train, x, y = _toy_dataset()
    hypermodel = kmc.tuning.MetaCleanerHyperModel(
        lambda: kmc.models.small_cnn((8, 8, 1), feature_dim=8),
        num_classes=3,
        subset_sizes=(2, 4),
        images_per_step=16,
    )
    tuner = keras_tuner.GridSearch(
        hypermodel, objective="val_accuracy", directory=tmp_path, project_name="t", seed=0
    )
    tuner.search(train, validation_data=(x, y), epochs=1, verbose=0)
    tried = sorted(t.hyperparameters.get("subset_size") for t in tuner.oracle.trials.values())
    assert tried == [2, 4]
    best = tuner.get_best_models(1)[0]
    assert isinstance(best, kmc.MetaCleanerModel)
    assert best.subset_size == tuner.get_best_hyperparameters(1)[0].get("subset_size")
    assert best.predict(x[:4], verbose=0).shape == (4, 3)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match=r"in \[1, images_per_step=16\]; got 0"):
        kmc.tuning.MetaCleanerHyperModel(lambda: None, 3, subset_sizes=(0,), images_per_step=16)
    with pytest.raises(ValueError, match="Unknown weightings"):
        kmc.tuning.MetaCleanerHyperModel(lambda: None, 3, weightings=("nope",))


def test_fit_needs_an_ungrouped_dataset():
    hypermodel = kmc.tuning.MetaCleanerHyperModel(lambda: None, 3, subset_sizes=(2,))
    with pytest.raises(TypeError, match="ungrouped training tf.data.Dataset"):
        hypermodel.fit(keras_tuner.HyperParameters(), keras.Sequential(), np.zeros((2, 8, 8, 1)))
