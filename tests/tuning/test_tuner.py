"""TrainingTuner: full training runs as trials, the baseline always among them."""

import os

import keras
import keras_tuner
import pytest

import keras_metacleaner as kmc
from keras_metacleaner import tuning
from keras_metacleaner.models import MetaCleanerModel


def _config(npz, **overrides):
    settings = dict(
        dataset=f"npz:{npz}",
        model_dir="unused",
        noise_type="symmetric",
        noise_rate=0.2,
        validation_split=0.2,
        backbone="small_cnn",
        epochs=1,
        batch_size=24,
        learning_rate=0.02,
        alpha_auroc_examples=0,
        verbose=0,
        seed=0,
    )
    settings.update(overrides)
    return kmc.training.TrainConfig(**settings)


@pytest.fixture
def batch_shapes(monkeypatch):
    """Records the shape of every training batch a model traces, tagged with the running trial."""
    seen = []
    current = {"trial": None}

    def recording(original):
        def train_step(self, data):
            x = data[0]
            x = x["images"] if isinstance(x, dict) else x
            seen.append((current["trial"], tuple(x.shape)))
            return original(self, data)

        return train_step

    monkeypatch.setattr(MetaCleanerModel, "train_step", recording(MetaCleanerModel.train_step))
    monkeypatch.setattr(keras.Model, "train_step", recording(keras.Model.train_step))
    run_trial = tuning.TrainingTuner.run_trial

    def tagged(self, trial, *args, **kwargs):
        current["trial"] = trial.trial_id
        return run_trial(self, trial, *args, **kwargs)

    monkeypatch.setattr(tuning.TrainingTuner, "run_trial", tagged)
    return seen


def test_each_trial_trains_on_batches_of_its_subset_size(tiny_npz, tmp_path, batch_shapes):
    space = tuning.SearchSpace(("metacleaner",), (2, 3), (0.02,), images_per_step=24)
    tuner = tuning.TrainingTuner(
        _config(tiny_npz), space, "random", max_trials=3, directory=str(tmp_path)
    )
    tuner.search()
    trials = tuner.oracle.trials
    assert len(trials) == 3
    assert all(t.status == "COMPLETED" for t in trials.values())
    first = trials[min(trials)]
    assert first.hyperparameters.values["method"] == "baseline"
    by_trial = {}
    for trial_id, shape in batch_shapes:
        by_trial.setdefault(trial_id, set()).add(shape)
    seen_sizes = {}
    for trial_id, shapes in by_trial.items():
        ranks = {len(s) for s in shapes}
        if trials[trial_id].hyperparameters.values["method"] == "baseline":
            assert shapes == {(24, 8, 8, 1)}
            continue
        assert ranks == {5}, shapes
        (shape,) = shapes
        seen_sizes[trial_id] = shape[1]
        assert shape[0] * shape[1] == 24  # K·N images per step
    assert sorted(seen_sizes.values()) == [2, 3]  # the pipeline really regrouped per trial
    for trial_id, n in seen_sizes.items():
        assert trials[trial_id].hyperparameters.values["subset_size"] == n

    rows = tuning.trial_table(tuner)
    assert [r["method"] for r in rows].count("baseline") == 1
    assert all(r["validation"] == "noisy" for r in rows)
    assert rows[0][tuning.OBJECTIVE] == max(r[tuning.OBJECTIVE] for r in rows)
    table = tuning.format_trial_table(rows)
    assert "baseline" in table and "val acc" in table

    paths = tuning.write_best(tuner, str(tmp_path))
    best = tuning.read_best(str(tmp_path))
    assert best["objective"]["validation"]["kind"] == "noisy"
    assert best["objective"]["value"] == rows[0][tuning.OBJECTIVE]
    flags = open(paths["flags"]).read()
    assert f"--method={rows[0]['method']}" in flags
    assert f"--batch_size={rows[0]['batch_size']}" in flags


def test_a_rerun_resumes_and_reuses_finished_trials(tiny_npz, tmp_path):
    calls = []

    def killed_after_second_run(config, strategy):
        calls.append(config.model_dir)
        results = kmc.training.run(config, strategy)
        if len(calls) == 2:  # the process dies after the run, before the oracle hears of it
            raise keras_tuner.errors.FatalError("killed")
        return results

    space = tuning.SearchSpace(("metacleaner",), (2, 3), (0.02,), images_per_step=24)
    config = _config(tiny_npz)
    first = tuning.TrainingTuner(
        config, space, max_trials=3, directory=str(tmp_path), train_fn=killed_after_second_run
    )
    with pytest.raises(keras_tuner.errors.FatalError):
        first.search()
    statuses = sorted(t.status for t in first.oracle.trials.values())
    assert statuses == ["COMPLETED", "RUNNING"]

    def train(config, strategy):
        calls.append(config.model_dir)
        return kmc.training.run(config, strategy)

    again = tuning.TrainingTuner(
        config, space, max_trials=3, directory=str(tmp_path), train_fn=train
    )
    again.search()
    assert len(calls) == 3  # the interrupted trial's finished run was read back, not retrained
    assert len(set(calls)) == 3
    assert sorted(t.status for t in again.oracle.trials.values()) == ["COMPLETED"] * 3


def test_validation_score_requires_a_validation_split():
    with pytest.raises(ValueError, match="validation_split > 0"):
        tuning.validation_score({"validation": {"kind": None, "size": 0}, "history": []})
    results = {
        "validation": {"kind": "noisy", "size": 10},
        "selection": {"select_on": "last", "epoch": 1, "score": None},
        "history": [{"noisy_val_accuracy": 0.5}, {"noisy_val_accuracy": 0.7}],
    }
    assert tuning.validation_score(results) == (0.7, "noisy", 10)


def test_groups_per_batch_fits_the_replicas():
    assert tuning.groups_per_batch(128, 3) == 42
    assert tuning.groups_per_batch(128, 6, replicas=2) == 20
    assert tuning.groups_per_batch(128, 8, replicas=4) == 16
    with pytest.raises(ValueError, match="subset_size=8: images_per_step=12"):
        tuning.groups_per_batch(12, 8, replicas=2)
    space = tuning.SearchSpace(("metacleaner",), (2, 3, 4, 6, 8), images_per_step=128, replicas=2)
    for n in space.subset_sizes:
        settings = space.settings({"method": "metacleaner", "subset_size": n, "learning_rate": 0.1})
        k = settings["batch_size"] // n
        assert settings["batch_size"] == k * n and k % 2 == 0
    assert space.settings({"method": "baseline", "learning_rate": 0.1}) == {
        "method": "baseline",
        "learning_rate": 0.1,
        "batch_size": 128,
    }


@pytest.mark.parametrize("kind", ["bayesian", "hyperband"])
def test_every_tuner_starts_with_the_baseline(kind, tmp_path):
    space = tuning.SearchSpace(("metacleaner",), (2, 4), (0.01, 0.02), images_per_step=16)
    scores = {"baseline": 0.5, 2: 0.6, 4: 0.7}

    def fake_train(config, strategy):
        n = config.subset_size if config.method != "baseline" else "baseline"
        os.makedirs(config.model_dir, exist_ok=True)
        return {
            "history": [{"epoch": 0, "noisy_val_accuracy": scores[n]}],
            "validation": {"kind": "noisy", "size": 5},
            "selection": {"select_on": "last", "epoch": 0, "score": scores[n]},
            "test_accuracy": scores[n],
        }

    config = kmc.training.TrainConfig("npz:unused.npz", "unused", epochs=3)
    tuner = tuning.TrainingTuner(
        config, space, kind, max_trials=4, directory=str(tmp_path), train_fn=fake_train
    )
    tuner.search()
    trials = [tuner.oracle.trials[t] for t in sorted(tuner.oracle.trials)]
    assert trials[0].hyperparameters.values["method"] == "baseline"
    assert len(trials) == 4
    assert tuning.best_trial(tuner).score == max(t.score for t in trials)
    assert all(t.status == "COMPLETED" for t in trials)
