"""TrainConfig: sections and flat names, method resolution, validation without TensorFlow."""

import math
import os
import subprocess
import sys

import pytest

from keras_metacleaner.training import config as config_lib
from keras_metacleaner.training.config import TrainConfig

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_config_and_flags_modules_import_without_tensorflow():
    # A tool defers the package's imports (KMC_DEFER_IMPORTS in its __main__):
    # what it needs to validate its flags must then not pull TensorFlow in.
    code = (
        "KMC_DEFER_IMPORTS = True\n"
        "import sys\n"
        f"sys.path.insert(0, {ROOT!r} + '/tools')\n"
        "import keras_metacleaner.training.config, keras_metacleaner.training.methods\n"
        "import train_flags\n"
        "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]\n"
        "print(bad)\n"
    )
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == "[]", out.stderr


def test_sections_and_flat_names():
    config = TrainConfig("fashion_mnist", "/tmp/r", epochs=3, select_on="noisy_val")
    assert config.optimizer.epochs == config.epochs == 3
    assert config.run.select_on == "noisy_val" and config.data.dataset == "fashion_mnist"
    config.batch_size = 64
    assert config.data.batch_size == 64
    assert set(config.flat()) == set(config_lib.FLAT_NAMES)
    assert config.nested()["model"]["method"] == "metacleaner"
    assert TrainConfig(**config.flat()) == config
    with pytest.raises(TypeError, match="no setting 'epoch'"):
        TrainConfig("x", "/tmp/r", epoch=3)


def test_resolution_fills_the_method_and_keeps_overrides():
    paper = TrainConfig("x", "/tmp/r", method="paper").resolved()
    assert (paper.weighting, paper.member_loss_weight, paper.subset_loss_weights) == (
        "fc_fc_relu_sig",
        0.0,
        "none",
    )
    override = TrainConfig("x", "/tmp/r", method="paper", weighting="constant").resolved()
    assert override.weighting == "constant" and override.member_loss_weight == 0.0
    bootstrap = TrainConfig("x", "/tmp/r", method="metacleaner_v2").resolved()
    assert bootstrap.bootstrap_after_epochs == 5
    assert (
        TrainConfig("x", "/tmp/r", method="metacleaner_v1").resolved().bootstrap_after_epochs == -1
    )
    assert TrainConfig("x", "/tmp/r", lr_decay_epochs=5).resolved().schedule == "step"
    assert TrainConfig("x", "/tmp/r").resolved().schedule == "constant"


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"batch_size": 30}, "batch_size=30 must be divisible by subset_size=4"),
        ({"noise_rate": 1.0}, r"noise_rate=1.0 must be in \[0, 1\)"),
        ({"noise_type": "gaussian"}, "noise_type='gaussian'"),
        ({"method": "mixup"}, "method='mixup'"),
        ({"strategy": "tpu"}, "strategy='tpu'"),
        ({"epochs": 0}, r"epochs \+ finetune_epochs must be >= 1"),
        ({"subset_loss_weights": "min"}, "subset_loss_weights='min': expected one of"),
        ({"hidden_units": 0}, "hidden_units=0 must be >= 1"),
        ({"momentum": -1.0}, r"momentum=-1.0 must be in \[0, 1\)"),
        ({"momentum": 1.0}, r"momentum=1.0 must be in \[0, 1\)"),
        ({"weight_decay": -1.0}, "weight_decay=-1.0 must be >= 0"),
        ({"dropout": 2.0}, r"dropout=2.0 must be in \[0, 1\)"),
        ({"learning_rate": math.nan}, "learning_rate=nan must be a finite number"),
        ({"learning_rate": math.inf}, "learning_rate=inf must be a finite number"),
        ({"noise_rate": math.nan}, "noise_rate=nan must be a finite number"),
        ({"finetune_learning_rate": -1.0}, "finetune_learning_rate=-1.0 must be >= 0"),
        ({"finetune_learning_rate": math.inf}, "finetune_learning_rate=inf must be a finite"),
        ({"validation_split": 1.0}, r"validation_split=1.0 must be in \[0, 1\)"),
        ({"schedule": "step"}, "schedule=step needs lr_decay_epochs >= 1"),
        ({"schedule": "cosine", "lr_decay_epochs": 5}, "applies only to schedule=step"),
        ({"warmup_epochs": 10}, "warmup_epochs=10 must be < epochs=10"),
        ({"select_on": "clean"}, "select_on='clean'"),
        ({"augment": True}, "augment needs image_size"),
        ({"method": "baseline", "weighting": "constant"}, "method=baseline trains without"),
        ({"backbone_weights": "imagenet"}, "only backbone=resnet50 has pretrained weights"),
        ({"bootstrap_after_epochs": -2}, r"bootstrap_after_epochs=-2 must be >= 0, or -1"),
        ({"method": "paper", "bootstrap_after_epochs": 3}, "method=paper with member_loss_weight"),
        (
            {"method": "metacleaner_v2", "member_loss_weight": 0.0},
            "bootstrap_after_epochs=5 relabels members",
        ),
        ({"method": "sce", "bootstrap_after_epochs": 3}, "method=sce trains without"),
        (
            {"method": "paper", "loss_weight_normalization": "batch"},
            "loss_weight_normalization=batch scales the alpha-weighted losses: method=paper",
        ),
        (
            {"method": "loss_reweight", "loss_weight_normalization": "batch"},
            "loss_weight_normalization=batch scales the alpha-weighted losses",
        ),
        ({"method": "elr", "loss_weight_normalization": "batch"}, "method=elr trains without"),
    ],
)
def test_validation_names_the_setting(tmp_path, overrides, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig("x", str(tmp_path / "run"), **overrides).validate()


def test_directories_under_a_file_are_refused(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="model_dir=.*exists and is not a directory"):
        TrainConfig("x", str(a_file)).validate()
    with pytest.raises(ValueError, match="export_dir=.*is a file"):
        TrainConfig("x", str(tmp_path / "run"), export_dir=str(a_file / "a" / "b")).validate()
    with pytest.raises(ValueError, match="model_dir=.*is a file"):
        TrainConfig("x", str(a_file / "run")).validate()
    TrainConfig("x", str(tmp_path / "new" / "run")).validate()


def test_mirrored_names_match_their_registries():
    import keras_metacleaner as kmc
    from keras_metacleaner.training import strategy

    assert set(config_lib.BACKBONES) == set(kmc.models.BACKBONES)
    assert set(config_lib.WEIGHTINGS) == set(kmc.layers.WEIGHTINGS)
    assert set(config_lib.STRATEGIES) == set(strategy.STRATEGIES)
    subset = {w or "none" for w in kmc.models.SUBSET_LOSS_WEIGHTS}
    assert set(config_lib.SUBSET_LOSS_WEIGHTS) == subset
