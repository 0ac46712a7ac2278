import csv
import json
import os

import keras
import numpy as np
import pytest
from test_case import write_noisy_npz

import keras_metacleaner as kmc
from keras_metacleaner.training import preparation, recipe
from keras_metacleaner.training.config import TrainConfig


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
    return TrainConfig(**kwargs)


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
    with pytest.raises(ValueError, match="holds a finished run .*overwrite"):
        recipe.run(_config(toy_npz, tmp_path / "base", method="baseline", epochs=1))
    assert (results_path.stat().st_mtime_ns, results_path.read_bytes()) == written

    # With overwrite it starts afresh: logs are not appended to.
    again = recipe.run(
        _config(toy_npz, tmp_path / "base", method="baseline", epochs=1, overwrite=True)
    )
    assert [e["epoch"] for e in again["history"]] == [0]
    with open(tmp_path / "base" / "log.csv") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["0"]


def test_loss_reweight_trains(toy_npz, tmp_path):
    results = recipe.run(_config(toy_npz, tmp_path / "rw", method="loss_reweight", epochs=1))
    model = keras.saving.load_model(tmp_path / "rw" / "model.keras")
    assert model.mode == "loss_reweight"
    assert results["history"][0]["alpha_mean"] > 0


def test_prepare_data_injects_noise_on_a_subset_and_keeps_the_fast_path(toy_npz, tmp_path):
    config = _config(toy_npz, tmp_path, train_subset=100, noise_type="symmetric", noise_rate=0.5)
    prepared = preparation.prepare_data(config.resolved())
    arrays = np.load(toy_npz)
    assert len(prepared.labels) == 100 and prepared.noise_injected
    # Injected on top of the file's own noise, measured against the true labels.
    np.testing.assert_array_equal(prepared.clean, arrays["y_train_clean"][:100])
    assert np.mean(prepared.labels != arrays["y_train"][:100]) == pytest.approx(0.5)
    assert prepared.train.loaded.view is not None and prepared.train.loaded.size == 100
    np.testing.assert_array_equal(prepared.train.loaded.view.labels, prepared.labels)
    np.testing.assert_array_equal([int(y) for _, y in prepared.train.dataset], prepared.labels)


def test_transition_noise_from_a_file(toy_npz, tmp_path):
    matrix = np.roll(np.eye(4), 1, axis=1)  # every label moves to the next class
    path = tmp_path / "t.npy"
    np.save(path, matrix)
    config = _config(toy_npz, tmp_path, noise_type=f"transition:{path}")
    prepared = preparation.prepare_data(config)
    np.testing.assert_array_equal(prepared.labels, (np.load(toy_npz)["y_train"] + 1) % 4)
    np.save(path, np.eye(3))
    with pytest.raises(ValueError, match=r"expected shape \(4, 4\) for 4 classes"):
        preparation.prepare_data(config)
    assert not (tmp_path / "run").exists()


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
    assert not (tmp_path / "ft").exists()  # data checks run before anything is written


@pytest.mark.parametrize(
    "method, overrides, expected",
    [
        ("metacleaner", {}, ("label_posterior", 1.0, "max_alpha")),
        ("paper", {}, ("fc_fc_relu_sig", 0.0, None)),
        ("paper", {"subset_loss_weights": "max_alpha"}, ("fc_fc_relu_sig", 0.0, "max_alpha")),
        ("metacleaner", {"weighting": "constant"}, ("constant", 1.0, "max_alpha")),
    ],
)
def test_build_model_resolves_the_method_and_its_overrides(
    toy_npz, tmp_path, method, overrides, expected
):
    config = _config(toy_npz, tmp_path, method=method, **overrides)
    model = recipe.build_model(config, 3, (8, 8, 1))
    weighting, member, subset = expected
    got, want = model.cleaner.weighting, kmc.layers.get_weighting(weighting, 4)

    def settings(layer):
        return {k: v for k, v in layer.get_config().items() if k not in ("name", "dtype")}

    assert type(got) is type(want) and settings(got) == settings(want)
    assert model.member_loss_weight == member
    assert model.subset_loss_weights == subset


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


def test_validation_split_selection_and_results_keys(toy_npz, tmp_path):
    """--validation_split after noise, --select_on=noisy_val keeps (and saves) the best epoch."""
    config = _config(
        toy_npz,
        tmp_path / "sel",
        method="baseline",
        epochs=4,
        learning_rate=0.05,
        validation_split=0.25,
        select_on="noisy_val",
        noise_type="symmetric",
        noise_rate=0.5,
    )
    results = recipe.run(config)
    history = results["history"]
    scores = [e["noisy_val_accuracy"] for e in history]
    best = int(np.argmax(scores))  # the first best epoch
    assert results["selection"] == {
        "select_on": "noisy_val",
        "stage": "train",
        "epoch": best,
        "score": pytest.approx(scores[best]),
    }
    assert results["validation"] == {"kind": "noisy", "size": 48}
    assert results["dataset"]["train_size"] == 192 - 48
    oracle = max([e["val_accuracy"] for e in history] + [results["final_test_accuracy"]])
    assert results["oracle_best_test_accuracy"] == pytest.approx(oracle)
    assert results["picked_test_accuracy"] == results["test_accuracy"]
    assert results["picked_test_accuracy"] == pytest.approx(history[best]["val_accuracy"], abs=1e-6)
    assert results["method"] == "baseline" and results["config"]["run"]["select_on"] == "noisy_val"
    assert results["flags"]["validation_split"] == 0.25
    # The saved model holds the kept weights, not the last epoch's.
    model = keras.saving.load_model(tmp_path / "sel" / "model.keras")
    arrays = np.load(toy_npz)
    predicted = model.predict(arrays["x_test"].astype("float32"), verbose=0).argmax(-1)
    assert np.mean(predicted == arrays["y_test"]) == pytest.approx(results["test_accuracy"])
    assert set(os.listdir(tmp_path / "sel")) >= {"run.json", "results.json", "model.keras"}


def test_select_on_noisy_val_without_a_validation_split_is_refused(toy_npz, tmp_path):
    with pytest.raises(ValueError, match="select_on=noisy_val needs a validation split"):
        recipe.run(_config(toy_npz, tmp_path / "none", select_on="noisy_val"))
    assert not (tmp_path / "none").exists()


def test_interrupted_run_resumes_only_under_the_same_settings(toy_npz, tmp_path):
    model_dir = tmp_path / "resume"
    recipe.run(_config(toy_npz, model_dir, method="baseline", epochs=1))
    recorded = json.loads((model_dir / "run.json").read_text())["config"]
    assert recorded["method"] == "baseline" and recorded["schedule"] == "constant"
    # What a kill during training leaves: run.json and a backup, no results.
    (model_dir / "results.json").unlink()
    (model_dir / "backup" / "chief").mkdir(parents=True)
    before = sorted(p.name for p in model_dir.iterdir())
    with pytest.raises(ValueError, match="other settings .*learning_rate.*noise_rate"):
        recipe.run(
            _config(
                toy_npz,
                model_dir,
                method="baseline",
                epochs=1,
                noise_type="symmetric",
                noise_rate=0.6,
                learning_rate=0.05,
            )
        )
    assert sorted(p.name for p in model_dir.iterdir()) == before
    # The same settings resume (the backup is taken up, then removed at the end).
    results = recipe.run(_config(toy_npz, model_dir, method="baseline", epochs=1))
    assert [e["epoch"] for e in results["history"]] == [0]
    assert not (model_dir / "backup").exists()
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert (model_dir / "curves.png").is_file()
