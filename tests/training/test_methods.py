"""The methods registry: every name of the contract, one complete configuration each."""

import numpy as np
import pytest

import keras_metacleaner as kmc
from keras_metacleaner.training import methods, recipe
from keras_metacleaner.training.config import TrainConfig

CONTRACT = (
    "metacleaner",
    "metacleaner_v1",
    "metacleaner_v2",
    "metacleaner_v3",
    "paper",
    "loss_reweight",
    "baseline",
    "gce",
    "sce",
    "elr",
    "coteaching",
)


def test_the_contract_names_are_registered():
    assert tuple(methods.METHODS) == CONTRACT
    assert {m.inputs for m in methods.METHODS.values()} <= set(methods.INPUTS)
    with pytest.raises(ValueError, match="method='mixup': expected one of metacleaner"):
        methods.get_method("mixup")


def test_grouped_options_agree_with_the_model_presets():
    presets = getattr(kmc.models, "PRESETS", None)
    if presets is None:
        pytest.skip("kmc.models.PRESETS arrives with helper 'model'")
    for name in (
        "metacleaner",
        "metacleaner_v1",
        "metacleaner_v2",
        "metacleaner_v3",
        "paper",
        "loss_reweight",
    ):
        preset = presets[name]
        for key, value in methods.METHODS[name].options.items():
            # The flags' "none" and -1 ("never") are the model's None.
            want = None if value in ("none", -1) else value
            assert preset.get(key, want) == want, (name, key)


def test_metacleaner_is_the_newest_frozen_version():
    # A new default is a new version: edit DEFAULT_VERSIONS, never a frozen entry.
    newest = list(kmc.models.DEFAULT_VERSIONS)[-1]
    assert kmc.models.DEFAULT_VERSION == newest
    assert dict(kmc.models.PRESETS["metacleaner"]) == dict(kmc.models.PRESETS[newest])
    assert methods.METHODS["metacleaner"].options == methods.METHODS[newest].options
    v1 = {
        "weighting": "label_posterior",
        "mode": "hallucinate",
        "member_loss_weight": 1.0,
        "subset_loss_weights": "max_alpha",
        "bootstrap_after_epochs": None,
        "loss_weight_normalization": None,
    }
    assert dict(kmc.models.DEFAULT_VERSIONS["metacleaner_v1"]) == v1
    assert dict(kmc.models.DEFAULT_VERSIONS["metacleaner_v2"]) == {
        **v1,
        "bootstrap_after_epochs": 5,
    }
    assert dict(kmc.models.DEFAULT_VERSIONS["metacleaner_v3"]) == {
        **v1,
        "bootstrap_after_epochs": 5,
        "loss_weight_normalization": "batch",
    }


def _available(name):
    needs = {
        "gce": ("losses", "GeneralizedCrossEntropy"),
        "sce": ("losses", "SymmetricCrossEntropy"),
        "elr": ("models", "ELRModel"),
        "coteaching": ("models", "CoTeachingModel"),
    }.get(name)
    if needs is None:
        return True
    module = getattr(kmc, needs[0], None)
    return module is not None and hasattr(module, needs[1])


@pytest.mark.parametrize("name", CONTRACT)
def test_every_method_builds_and_predicts(name):
    if not _available(name):
        pytest.skip(f"{name} arrives with helper 'model'")
    config = TrainConfig("x", "/tmp/r", method=name)
    model = recipe.build_model(config, 3, (8, 8, 1), num_examples=20)
    inference = model.inference_model() if hasattr(model, "inference_model") else model
    probs = np.asarray(inference(np.zeros((2, 8, 8, 1), "float32")))
    assert probs.shape == (2, 3)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize(
    "name, override, expected",
    [
        ("metacleaner_v1", None, None),
        ("metacleaner_v2", None, 5),
        ("metacleaner_v2", -1, None),
        ("metacleaner_v1", 2, 2),
    ],
)
def test_bootstrap_after_epochs_reaches_the_model(name, override, expected):
    config = TrainConfig("x", "/tmp/r", method=name, bootstrap_after_epochs=override)
    model = recipe.build_model(config.resolved(), 3, (8, 8, 1), num_examples=20)
    assert model.bootstrap_after_epochs == expected


@pytest.mark.parametrize(
    "name, override, expected",
    [
        ("metacleaner_v2", None, None),
        ("metacleaner_v3", None, "batch"),
        ("metacleaner_v3", "none", None),
        ("metacleaner_v2", "batch", "batch"),
    ],
)
def test_loss_weight_normalization_reaches_the_model(name, override, expected):
    config = TrainConfig("x", "/tmp/r", method=name, loss_weight_normalization=override)
    model = recipe.build_model(config.resolved(), 3, (8, 8, 1), num_examples=20)
    assert model.loss_weight_normalization == expected


@pytest.fixture(scope="module")
def toy_npz(tmp_path_factory):
    from test_case import write_noisy_npz

    return write_noisy_npz(str(tmp_path_factory.mktemp("data") / "toy.npz"))


@pytest.mark.parametrize("name", ["gce", "sce", "elr", "coteaching"])
def test_peers_train_on_the_same_path(toy_npz, tmp_path, name):
    import keras

    config = TrainConfig(
        f"npz:{toy_npz}",
        str(tmp_path / name),
        method=name,
        batch_size=32,
        epochs=2,
        verbose=0,
        validation_split=0.25,
        select_on="noisy_val",
    )
    results = recipe.run(config)
    assert results["method"] == name and results["method_args"] == methods.METHODS[name].args
    assert all(np.isfinite(e["loss"]) for e in results["history"])
    assert [e["epoch"] for e in results["history"]] == [0, 1]
    assert 0.0 <= results["test_accuracy"] <= 1.0 and results["selection"]["epoch"] is not None
    model = keras.saving.load_model(tmp_path / name / "model.keras")
    assert hasattr(model, "inference_model") or model.output_shape == (None, 4)
