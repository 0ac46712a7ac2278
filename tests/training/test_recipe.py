import csv
import json
import os

import keras
import numpy as np
import pytest
from test_case import write_noisy_npz

import keras_metacleaner as kmc
from keras_metacleaner.data import indexed
from keras_metacleaner.training import recipe


@pytest.fixture(scope="module")
def toy_npz(tmp_path_factory):
    return write_noisy_npz(str(tmp_path_factory.mktemp("data") / "toy.npz"))


def _config(toy_npz, model_dir, **overrides):
    kwargs = dict(
        dataset=f"npz:{toy_npz}",
        model_dir=str(model_dir),
        batch_size=16,
        subset_size=4,
        epochs=2,
        learning_rate=0.02,
        verbose=0,
        alpha_auroc_examples=96,
    )
    kwargs.update(overrides)
    return recipe.TrainConfig(**kwargs)


def test_metacleaner_run_with_finetune_writes_everything(toy_npz, tmp_path):
    export_dir = tmp_path / "export"
    config = _config(toy_npz, tmp_path / "run", finetune_epochs=1, export_dir=str(export_dir))
    results = recipe.run(config)

    arrays = np.load(toy_npz)
    expected_noise = float(np.mean(arrays["y_train"] != arrays["y_train_clean"]))
    assert results["realised_noise_rate"] == pytest.approx(expected_noise)
    assert [(e["stage"], e["epoch"]) for e in results["history"]] == [
        ("train", 0),
        ("train", 1),
        ("finetune", 0),
    ]
    assert all("alpha_mean" in e for e in results["history"][:2])
    assert "alpha_mean" not in results["history"][2]
    assert results["steps_per_epoch"] == len(arrays["y_train"]) // 16
    assert 0.0 <= results["test_accuracy"] <= results["best_test_accuracy"] <= 1.0
    assert results["best_test_accuracy"] == pytest.approx(
        max([e["val_accuracy"] for e in results["history"]] + [results["test_accuracy"]])
    )
    assert 0.0 <= results["alpha_auroc"] <= 1.0
    assert results["alpha_auroc_examples"] == 96
    assert results["alpha"]["floor"] >= 0.0 and len(results["alpha"]["probe_histogram"]) == 10
    assert results["class_names"] == [f"class_{c}" for c in range(4)]
    assert results["flags"]["finetune_epochs"] == 1 and results["seconds_per_epoch"] > 0

    run_dir = tmp_path / "run"
    on_disk = json.loads((run_dir / "results.json").read_text())
    assert on_disk["test_accuracy"] == results["test_accuracy"]
    assert not (run_dir / "backup").exists()
    with open(run_dir / "log.csv") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["0", "1"]
    assert os.listdir(run_dir / "logs" / "alpha")

    # The saved model is the MetaCleanerModel; its plain classifier reproduces the accuracy.
    model = keras.saving.load_model(run_dir / "model.keras")
    assert isinstance(model, kmc.MetaCleanerModel)
    x_test, y_test = arrays["x_test"].astype("float32"), arrays["y_test"]
    accuracy = np.mean(model.inference_model().predict(x_test, verbose=0).argmax(-1) == y_test)
    assert accuracy == pytest.approx(results["test_accuracy"], abs=1e-6)
    assert results["export_path"] == str(export_dir / "1")
    assert os.path.isfile(export_dir / "1" / "saved_model.pb")


def test_baseline_is_a_plain_classifier_with_the_same_steps(toy_npz, tmp_path):
    results = recipe.run(_config(toy_npz, tmp_path / "base", method="baseline", epochs=1))
    assert results["method"] == "baseline"
    assert results["alpha"] is None and results["alpha_auroc"] is None
    assert results["steps_per_epoch"] == 192 // 16
    model = keras.saving.load_model(tmp_path / "base" / "model.keras")
    assert not isinstance(model, kmc.MetaCleanerModel)
    assert [layer.name for layer in model.layers][-2:] == ["classifier", "probabilities"]

    # A finished run is not replaced unasked: refused before anything is touched.
    results_path = tmp_path / "base" / "results.json"
    written = (results_path.stat().st_mtime_ns, results_path.read_bytes())
    with pytest.raises(FileExistsError, match="holds a finished run .*overwrite=True"):
        recipe.run(_config(toy_npz, tmp_path / "base", method="baseline", epochs=1))
    assert (results_path.stat().st_mtime_ns, results_path.read_bytes()) == written

    # With overwrite it starts afresh: logs are not appended to.
    again = recipe.run(
        _config(toy_npz, tmp_path / "base", method="baseline", epochs=1, overwrite=True)
    )
    assert [e["epoch"] for e in again["history"]] == [0]
    with open(tmp_path / "base" / "log.csv") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["0"]


def test_finished_run_needs_a_complete_record_and_no_backup(tmp_path):
    assert recipe.finished_run(str(tmp_path / "missing")) is None
    results = tmp_path / "results.json"
    results.write_text('{"method": "baseline", "flags": {}, "history": []')  # cut short
    assert recipe.finished_run(str(tmp_path)) is None
    results.write_text(json.dumps({"method": "baseline", "flags": {}, "history": []}))
    assert recipe.finished_run(str(tmp_path)) is None
    record = {"method": "baseline", "flags": {}, "history": [], "test_accuracy": 0.5}
    results.write_text(json.dumps(record))
    assert recipe.finished_run(str(tmp_path)) == str(results)
    # An interrupted run in the same directory resumes rather than being refused.
    (tmp_path / "backup" / "chief").mkdir(parents=True)
    assert recipe.finished_run(str(tmp_path)) is None


def test_loss_reweight_trains(toy_npz, tmp_path):
    results = recipe.run(_config(toy_npz, tmp_path / "rw", method="loss_reweight", epochs=1))
    model = keras.saving.load_model(tmp_path / "rw" / "model.keras")
    assert model.mode == "loss_reweight"
    assert results["history"][0]["alpha_mean"] > 0


def test_prepare_data_injects_noise_on_a_subset_and_keeps_the_fast_path(toy_npz, tmp_path):
    config = _config(toy_npz, tmp_path, train_subset=100, noise_type="symmetric", noise_rate=0.5)
    prepared = recipe.prepare_data(config)
    arrays = np.load(toy_npz)
    assert len(prepared.labels) == 100 and prepared.noise_injected
    # Injected on top of the file's own noise, measured against the true labels.
    np.testing.assert_array_equal(prepared.clean, arrays["y_train_clean"][:100])
    assert np.mean(prepared.labels != arrays["y_train"][:100]) == pytest.approx(0.5)
    source = indexed.get_source(prepared.train)
    assert source is not None and source.size == 100
    np.testing.assert_array_equal(source.labels, prepared.labels)
    np.testing.assert_array_equal([int(y) for _, y in prepared.train], prepared.labels)


def test_transition_noise_from_a_file(toy_npz, tmp_path):
    matrix = np.roll(np.eye(4), 1, axis=1)  # every label moves to the next class
    path = tmp_path / "t.npy"
    np.save(path, matrix)
    config = _config(toy_npz, tmp_path, noise_type=f"transition:{path}")
    prepared = recipe.prepare_data(config)
    np.testing.assert_array_equal(prepared.labels, (np.load(toy_npz)["y_train"] + 1) % 4)
    np.save(path, np.eye(3))
    with pytest.raises(ValueError, match="3x3 but the dataset has 4 classes"):
        recipe.prepare_data(config)


def test_finetune_on_another_dataset_checks_classes(toy_npz, tmp_path):
    other = write_noisy_npz(str(tmp_path / "other.npz"), num_classes=3)
    config = _config(
        toy_npz, tmp_path / "ft", epochs=0, finetune_epochs=1, finetune_dataset=f"npz:{other}"
    )
    with pytest.raises(ValueError, match="has 3 classes; the training data has 4"):
        recipe.run(config)
    config = _config(
        toy_npz, tmp_path / "ft", epochs=0, finetune_epochs=1, finetune_dataset="split:clean_train"
    )
    with pytest.raises(ValueError, match="no split 'clean_train'"):
        recipe.run(config)


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"batch_size": 30}, "batch_size=30 must be divisible by subset_size=4"),
        ({"noise_rate": 1.0}, r"noise_rate=1.0 must be in \[0, 1\)"),
        ({"noise_type": "gaussian"}, "noise_type='gaussian'"),
        ({"method": "coteaching"}, "method='coteaching'"),
        ({"strategy": "tpu"}, "strategy='tpu'"),
        ({"epochs": 0}, "epochs \\+ finetune_epochs must be >= 1"),
        ({"subset_loss_weights": "min"}, "subset_loss_weights='min': expected one of"),
    ],
)
def test_config_validation(toy_npz, tmp_path, overrides, match):
    with pytest.raises(ValueError, match=match):
        _config(toy_npz, tmp_path, **overrides).validate()


@pytest.mark.parametrize("weights", [None, "max_alpha"])
def test_build_model_passes_the_subset_loss_weights(toy_npz, tmp_path, weights):
    config = _config(toy_npz, tmp_path, subset_loss_weights=weights)
    model = recipe.build_model(config, 3, (8, 8, 1))
    assert model.subset_loss_weights == weights


def test_replicas_must_divide_the_subsets(toy_npz, tmp_path):
    from test_case import two_replica_strategy

    config = _config(toy_npz, tmp_path / "odd", batch_size=12, subset_size=4)
    with pytest.raises(
        ValueError, match="K = batch_size / subset_size=3 must be divisible by the 2"
    ):
        recipe.run(config, strategy=two_replica_strategy())
    assert not (tmp_path / "odd").exists()


def test_mixed_precision_trains_and_restores_the_policy(toy_npz, tmp_path):
    results = recipe.run(_config(toy_npz, tmp_path / "mp", epochs=1, mixed_precision=True))
    assert keras.config.dtype_policy().name == "float32"
    assert np.isfinite(results["history"][0]["loss"])
    model = keras.saving.load_model(tmp_path / "mp" / "model.keras")
    assert model.backbone.get_layer("conv1").dtype_policy.name == "mixed_float16"
