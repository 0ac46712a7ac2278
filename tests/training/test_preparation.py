"""Data preparation: first n, then noise, then the noisy validation split; data checks."""

import numpy as np
import pytest
from test_case import write_noisy_npz

from keras_metacleaner.training import preparation
from keras_metacleaner.training.config import TrainConfig


@pytest.fixture(scope="module")
def toy_npz(tmp_path_factory):
    return write_noisy_npz(str(tmp_path_factory.mktemp("data") / "toy.npz"))


def _prepare(toy_npz, tmp_path, **overrides):
    config = TrainConfig(f"npz:{toy_npz}", str(tmp_path / "run"), **{"batch_size": 16, **overrides})
    config.validate()
    return preparation.prepare_data(config.resolved())


def test_validation_split_is_taken_after_the_noise(toy_npz, tmp_path):
    noisy_only = _prepare(toy_npz, tmp_path, noise_type="symmetric", noise_rate=0.5)
    split = _prepare(
        toy_npz, tmp_path, noise_type="symmetric", noise_rate=0.5, validation_split=0.25
    )
    val, train = split.validation, split.train
    assert split.validation_kind == "noisy" and len(val) == 48 and len(train) == 144
    # Disjoint, together the whole (noisy) training data, labels as noisy as training.
    assert sorted(np.concatenate([val.indices, train.indices])) == list(range(192))
    np.testing.assert_array_equal(val.labels, noisy_only.labels[val.indices])
    np.testing.assert_array_equal(train.labels, noisy_only.labels[train.indices])
    assert np.mean(val.labels != val.clean) > 0.4
    np.testing.assert_array_equal([int(y) for _, y in val.dataset], val.labels)
    # The training part keeps the fast random-access path.
    assert train.loaded.view is not None and train.loaded.size == 144
    np.testing.assert_array_equal(train.loaded.view.labels, train.labels)
    assert not (tmp_path / "run").exists()


def test_data_checks_run_before_anything_is_written(toy_npz, tmp_path):
    with pytest.raises(ValueError, match="batch_size=256 is larger than the 192 training"):
        _prepare(toy_npz, tmp_path, batch_size=256)
    with pytest.raises(ValueError, match="finetune_dataset=split:clean_tain: the dataset has no"):
        _prepare(toy_npz, tmp_path, finetune_epochs=1, finetune_dataset="split:clean_tain")
    bad = tmp_path / "rows.csv"
    bad.write_text("0.5,0.5,0,0\n0,1,0,0\n0,0,1,0\n0,0,0,0.5\n")
    with pytest.raises(ValueError, match="rows must sum to 1"):
        _prepare(toy_npz, tmp_path, noise_type=f"transition:{bad}")
    assert not (tmp_path / "run").exists()
