"""tools/train.py in-process: flag validation (exit 2, nothing written) and every recipe."""

import csv
import json
import os
import shutil

import numpy as np
import pytest
from test_case import write_noisy_npz

from tools.tool_helpers import CONFIGS, import_tool, invoke

train = import_tool("train")


@pytest.fixture(scope="module")
def toy_npz(tmp_path_factory):
    return write_noisy_npz(str(tmp_path_factory.mktemp("data") / "toy.npz"))


def _base(toy_npz, model_dir):
    return [
        f"--dataset=npz:{toy_npz}",
        f"--model_dir={model_dir}",
        "--batch_size=16",
        "--epochs=1",
        "--verbose=0",
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--method=mixup"], "--method=mixup"),
        (["--hidden_units=0"], "--hidden_units=0 must be >= 1"),
        (["--momentum=-1"], "--momentum=-1.0 must be in [0, 1)"),
        (["--weight_decay=-1"], "--weight_decay=-1.0 must be >= 0"),
        (["--dropout=2"], "--dropout=2.0 must be in [0, 1)"),
        (["--learning_rate=nan"], "--learning_rate=nan must be a finite number"),
        (["--learning_rate=inf"], "--learning_rate=inf must be a finite number"),
        (["--finetune_learning_rate=-1"], "--finetune_learning_rate=-1.0 must be >= 0"),
        (["--schedule=step"], "--schedule=step needs lr_decay_epochs >= 1"),
        (["--select_on=noisy_val"], "--select_on=noisy_val needs a validation split"),
        (["--method=baseline", "--weighting=constant"], "method=baseline trains without"),
        (["--noise_rate=0.4"], "--noise_rate=0.4 with noise_type=none"),
        # Data-dependent checks: after loading, still before anything is written.
        (["--batch_size=512"], "--batch_size=512 is larger than the 192 training examples"),
        (
            ["--finetune_epochs=1", "--finetune_dataset=split:clean_tain"],
            "--finetune_dataset=split:clean_tain: the dataset has no split 'clean_tain'",
        ),
        (["--batch_size=30"], "--batch_size=30 must be divisible by subset_size=4"),
        (["--noise_rate=1.0"], "--noise_rate=1.0 must be in [0, 1)"),
        (["--member_loss_weight=-1"], "--member_loss_weight=-1.0 must be >= 0"),
        (["--method=paper", "--bootstrap_after_epochs=3"], "method=paper with member_loss_weight"),
        (["--noise_rate=-0.1"], "--noise_rate=-0.1 must be in [0, 1)"),
        (["--noise_type=gaussian"], "--noise_type='gaussian'"),
        (["--noise_type=transition:/no/such.npy"], "/no/such.npy"),
        (["--backbone=vgg16"], "--backbone=vgg16"),
        (["--strategy=tpu"], "--strategy=tpu"),
        (["--weighting=softmax"], "--weighting=softmax"),
        (["--subset_loss_weights=min"], "--subset_loss_weights=min"),
        (["--backbone_weights=imagenet"], "only backbone=resnet50 has pretrained weights"),
        (
            ["--backbone=resnet50", "--backbone_weights=/no/weights.h5"],
            "/no/weights.h5: no such file",
        ),
        (["--augment"], "--augment needs image_size"),
        (
            ["--finetune_dataset=npz:/no/ft.npz", "--finetune_epochs=1"],
            "--finetune_dataset=npz:/no/ft.npz",
        ),
        (["--baseline_results=/no/results.json"], "--baseline_results=/no/results.json"),
        (["--strategy=multi_worker"], "needs TF_CONFIG"),
        (["--epochs=x"], "--epochs"),
    ],
)
def test_bad_flags_exit_2_and_write_nothing(toy_npz, tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    model_dir = tmp_path / "run"
    code = invoke(train, _base(toy_npz, model_dir) + args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err
    assert not model_dir.exists()
    assert os.listdir(tmp_path) == []


def test_missing_dataset_and_model_dir_that_is_a_file(toy_npz, tmp_path, capsys):
    code = invoke(train, [f"--dataset=npz:{tmp_path}/missing.npz", f"--model_dir={tmp_path}/run"])
    assert (
        code == 2 and f"--dataset=npz:{tmp_path}/missing.npz: the file" in capsys.readouterr().err
    )
    code = invoke(train, [f"--dataset=folder:{tmp_path}/nope", f"--model_dir={tmp_path}/run"])
    assert code == 2 and "does not exist" in capsys.readouterr().err
    code = invoke(train, ["--dataset=imagenet_folder", f"--model_dir={tmp_path}/run"])
    assert code == 2 and "imagenet_folder" in capsys.readouterr().err
    a_file = tmp_path / "file"
    a_file.write_text("x")
    code = invoke(train, [f"--dataset=npz:{toy_npz}", f"--model_dir={a_file}"])
    assert (
        code == 2
        and f"--model_dir={a_file}: exists and is not a directory" in capsys.readouterr().err
    )
    assert sorted(os.listdir(tmp_path)) == ["file"]


def test_imagenet_weights_offline_says_how_to_pass_a_file(toy_npz, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("KMC_OFFLINE", "1")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    code = invoke(
        train,
        _base(toy_npz, tmp_path / "run") + ["--backbone=resnet50", "--backbone_weights=imagenet"],
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "--backbone_weights=/path/to/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in err
    assert not (tmp_path / "run").exists()


def test_local_backbone_weights_load(toy_npz, tmp_path):
    import keras_metacleaner as kmc
    from keras_metacleaner.training import recipe

    source = kmc.models.resnet50((32, 32, 3))
    inner = source.get_layer("resnet50")
    weights = str(tmp_path / "resnet50_notop.weights.h5")
    inner.save_weights(weights)
    train.FLAGS.unparse_flags()
    train.parse_flags(
        ["train.py"]
        + _base(toy_npz, tmp_path / "run")
        + ["--backbone=resnet50", f"--backbone_weights={weights}", "--image_size=32"]
    )
    config = train.build_config()
    assert config.backbone_weights == weights
    model = recipe.build_model(config, 4, (32, 32, 3))
    loaded = model.backbone.get_layer("resnet50").get_weights()
    for got, want in zip(loaded[:3], inner.get_weights()[:3]):
        np.testing.assert_array_equal(got, want)


PAPER = {
    "food101n": dict(
        backbone="resnet50",
        subset_size=4,
        batch_size=480,
        momentum=0.9,
        weight_decay=1e-3,
        learning_rate=0.01,
        lr_decay_epochs=20,
        lr_decay_factor=0.1,
        epochs=80,
        hidden_units=384,
    ),
    "clothing1m": dict(
        backbone="resnet50",
        subset_size=4,
        batch_size=256,
        momentum=0.9,
        weight_decay=5e-3,
        learning_rate=0.01,
        lr_decay_epochs=5,
        lr_decay_factor=0.1,
        epochs=20,
        hidden_units=512,
    ),
    "clothing1m_clean25k": dict(
        batch_size=256,
        weight_decay=5e-3,
        epochs=20,
        hidden_units=512,
        finetune_dataset="split:clean_train",
        finetune_subset=25000,
    ),
    "clothing1m_clean50k": dict(
        batch_size=256,
        weight_decay=5e-3,
        epochs=20,
        hidden_units=512,
        finetune_dataset="split:clean_train",
        finetune_subset=50000,
    ),
    "cifar10_sym40": dict(
        backbone="wide_resnet_28_10", dropout=0.3, noise_type="symmetric", noise_rate=0.4
    ),
    "imagenet_sym40": dict(backbone="resnet50", noise_type="symmetric", noise_rate=0.4),
    "fashion_mnist": dict(
        backbone="small_cnn", noise_type="symmetric", noise_rate=0.4, train_subset=10000, epochs=30
    ),
}
# The paper's recipes select the paper's method by name: its weighting, no per-image loss.
for _name in PAPER:
    if _name != "fashion_mnist":
        PAPER[_name].update(
            method="paper",
            weighting="fc_fc_relu_sig",
            member_loss_weight=0.0,
            subset_loss_weights="none",
        )
PAPER["fashion_mnist"].update(method="metacleaner", schedule="constant")


@pytest.mark.parametrize("recipe_name", sorted(PAPER))
def test_recipe_parses_validates_and_starts(toy_npz, tmp_path, capsys, recipe_name):
    flagfile = os.path.join(CONFIGS, f"{recipe_name}.flags")
    # The recipe's own values, only the data (and offline weights) swapped for the fixture.
    train.FLAGS.unparse_flags()
    train.parse_flags(
        [
            "train.py",
            f"--flagfile={flagfile}",
            f"--dataset=npz:{toy_npz}",
            "--backbone_weights=none",
            f"--model_dir={tmp_path / 'check'}",
        ]
    )
    config = train.build_config().resolved()
    for key, value in PAPER[recipe_name].items():
        assert (
            getattr(config, key) == pytest.approx(value)
            if isinstance(value, float)
            else getattr(config, key) == value
        ), key
    if "finetune" in recipe_name or recipe_name.endswith("sym40") or "clean" in recipe_name:
        assert config.finetune_epochs > 0
    assert not (tmp_path / "check").exists()

    # A step or two on the fixture: tiny images, small backbone, a batch the fixture can fill.
    model_dir = tmp_path / "run"
    overrides = [
        f"--dataset=npz:{toy_npz}",
        f"--model_dir={model_dir}",
        "--backbone=small_cnn",
        "--backbone_weights=none",
        "--image_size=8",
        "--batch_size=32",
        "--train_subset=96",
        "--epochs=1",
        "--strategy=default",
        "--verbose=0",
        "--alpha_auroc_examples=64",
    ]
    if config.finetune_epochs:
        overrides += ["--finetune_epochs=1", "--finetune_subset=64"]
        if config.finetune_dataset:
            overrides.append(f"--finetune_dataset=npz:{toy_npz}")
    code = invoke(train, [f"--flagfile={flagfile}", *overrides])
    out = capsys.readouterr().out
    assert code == 0
    results = json.loads((model_dir / "results.json").read_text())
    assert results["flags"]["batch_size"] == 32 and results["dataset"]["train_size"] == 96
    stages = [e["stage"] for e in results["history"]]
    assert stages == ["train"] + (["finetune"] if config.finetune_epochs else [])
    assert "test accuracy (final epoch)" in out


def test_comparison_table_against_a_baseline(toy_npz, tmp_path, capsys):
    base_dir, mc_dir = tmp_path / "baseline", tmp_path / "metacleaner"
    assert invoke(train, _base(toy_npz, base_dir) + ["--method=baseline"]) == 0
    capsys.readouterr()
    code = invoke(
        train, _base(toy_npz, mc_dir) + [f"--baseline_results={base_dir / 'results.json'}"]
    )
    out = capsys.readouterr().out
    assert code == 0
    base = json.loads((base_dir / "results.json").read_text())
    ours = json.loads((mc_dir / "results.json").read_text())
    lines = out.strip().splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == ["baseline"])
    header, rule, final = lines[start : start + 3]
    assert header.split() == ["baseline", "metacleaner", "difference"]
    assert set(rule.replace(" ", "")) == {"-"}
    diff = 100 * (ours["test_accuracy"] - base["test_accuracy"])
    assert final.split()[-4:] == [
        f"{100 * base['test_accuracy']:.2f}%",
        f"{100 * ours['test_accuracy']:.2f}%",
        f"{diff:+.2f}",
        "pts",
    ]


@pytest.fixture(scope="module")
def finished_dir(toy_npz, tmp_path_factory):
    """A model_dir holding a finished one-epoch run."""
    model_dir = tmp_path_factory.mktemp("finished") / "run"
    assert invoke(train, _base(toy_npz, model_dir)) == 0
    assert (model_dir / "results.json").is_file() and not (model_dir / "backup").exists()
    return model_dir


def _snapshot(directory):
    """Every file under `directory`: relative path -> (mtime in ns, content)."""
    return {
        str(path.relative_to(directory)): (path.stat().st_mtime_ns, path.read_bytes())
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def test_finished_model_dir_is_refused_and_left_untouched(toy_npz, finished_dir, capsys):
    capsys.readouterr()
    before = _snapshot(finished_dir)
    assert {"results.json", "log.csv", "history.json", "model.keras"} <= set(before)
    code = invoke(train, _base(toy_npz, finished_dir))
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"--model_dir={finished_dir}: holds a finished run" in err
    assert "results.json" in err and "--overwrite" in err
    assert _snapshot(finished_dir) == before


def test_overwrite_replaces_a_finished_run(toy_npz, finished_dir, tmp_path, capsys):
    model_dir = tmp_path / "run"
    shutil.copytree(finished_dir, model_dir)
    events_before = sorted(model_dir.glob("logs/train/**/events.out.tfevents.*"))
    assert events_before
    code = invoke(train, _base(toy_npz, model_dir) + ["--epochs=2", "--overwrite"])
    assert code == 0, capsys.readouterr().err
    results = json.loads((model_dir / "results.json").read_text())
    assert results["flags"]["overwrite"] is True
    assert [e["epoch"] for e in results["history"]] == [0, 1]
    # Afresh: the old run's logs are gone, not appended to or mixed with the new ones.
    with open(model_dir / "log.csv") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["0", "1"]
    events_after = sorted(model_dir.glob("logs/train/**/events.out.tfevents.*"))
    assert len(events_after) == len(events_before)
    assert not set(events_before) & set(events_after)
