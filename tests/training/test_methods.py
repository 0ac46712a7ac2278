"""The methods registry: every name of the contract, one complete configuration each."""

import numpy as np
import pytest

import keras_metacleaner as kmc
from keras_metacleaner.training import methods, recipe
from keras_metacleaner.training.config import TrainConfig

CONTRACT = ("metacleaner", "paper", "loss_reweight", "baseline", "gce", "sce", "elr", "coteaching")


def test_the_contract_names_are_registered():
    assert tuple(methods.METHODS) == CONTRACT
    assert {m.inputs for m in methods.METHODS.values()} <= set(methods.INPUTS)
    with pytest.raises(ValueError, match="method='mixup': expected one of metacleaner"):
        methods.get_method("mixup")


def test_grouped_options_agree_with_the_model_presets():
    presets = getattr(kmc.models, "PRESETS", None)
    if presets is None:
        pytest.skip("kmc.models.PRESETS arrives with helper 'model'")
    for name in ("metacleaner", "paper", "loss_reweight"):
        preset = presets[name]
        for key, value in methods.METHODS[name].options.items():
            want = None if value == "none" else value
            assert preset.get(key, want) == want, (name, key)


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
