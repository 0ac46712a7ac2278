"""tools/tune.py: the flags of tools/train.py, a resumable search, best.flags train.py takes."""

import json
import os

import numpy as np
import pytest

from tests.tools.tool_helpers import run_tool

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    """A tiny npz dataset and a recipe flagfile for it (as tools/configs/*.flags are)."""
    root = tmp_path_factory.mktemp("tune")
    rng = np.random.default_rng(0)

    def images(labels):
        base = labels[:, None, None, None] * 80.0
        return np.clip(base + rng.normal(0, 20, (len(labels), 8, 8, 1)), 0, 255).astype("uint8")

    y_train = (np.arange(150) % 3).astype("int32")
    y_test = (np.arange(30) % 3).astype("int32")
    data = root / "tiny.npz"
    np.savez(data, x_train=images(y_train), y_train=y_train, x_test=images(y_test), y_test=y_test)
    flagfile = root / "recipe.flags"
    flagfile.write_text(
        "\n".join(
            [
                f"--dataset=npz:{data}",
                "--noise_type=symmetric",
                "--noise_rate=0.2",
                "--validation_split=0.2",
                "--backbone=small_cnn",
                "--epochs=1",
                "--batch_size=24",
                "--learning_rate=0.02",
                "--alpha_auroc_examples=0",
                "--verbose=0",
                f"--model_dir={root / 'recipe_run'}",
            ]
        )
        + "\n"
    )
    return root, str(flagfile)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--validation_split=0"], "--validation_split=0: the search scores trials"),
        (["--subset_sizes=2,zero"], "--subset_sizes=2,zero: 'zero' is not a int >= 1"),
        (["--methods=gce"], "['gce'] train without subsets"),
        (["--max_trials=0"], "--max_trials=0 must be >= 1"),
        (["--tuner=grid"], "--tuner"),
    ],
)
def test_bad_flags_exit_2_before_writing(recipe, args, message):
    root, flagfile = recipe
    directory = root / "bad"
    proc = run_tool("tune", [f"--flagfile={flagfile}", f"--directory={directory}", *args])
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert not directory.exists()


def test_search_resumes_and_its_best_flags_train(recipe):
    root, flagfile = recipe
    directory = root / "search"
    args = [
        f"--flagfile={flagfile}",
        f"--directory={directory}",
        "--subset_sizes=2,3",
        "--max_trials=3",
        "--strategy=mirrored",
        "--logical_cpus=2",
        f"--export_dir={root / 'export'}",
    ]
    proc = run_tool("tune", args, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Objective: accuracy on the NOISY validation split" in proc.stdout
    table = proc.stdout[proc.stdout.index("val acc") : proc.stdout.index("Best: trial")]
    assert table.count("baseline") == 1 and table.count("metacleaner") == 2
    best = json.loads((directory / "best_hyperparameters.json").read_text())
    assert best["objective"]["validation"]["kind"] == "noisy"
    flags = (directory / "best.flags").read_text()
    settings = best["settings"]
    assert f"--batch_size={settings['batch_size']}" in flags
    if settings["method"] != "baseline":  # K·N with K divisible by the 2 replicas
        assert (settings["batch_size"] // settings["subset_size"]) % 2 == 0
    assert "SavedModel for TF Serving" in proc.stdout
    assert any(name.isdigit() for name in os.listdir(root / "export"))

    again = run_tool("tune", args, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Reloading Tuner" in again.stdout
    assert "Running Trial" not in again.stdout  # every trial was done: nothing retrained

    train = run_tool(
        "train",
        [
            f"--flagfile={flagfile}",
            f"--flagfile={directory / 'best.flags'}",
            f"--model_dir={root / 'best_run'}",
        ],
        timeout=600,
    )
    assert train.returncode == 0, train.stderr[-3000:]
    results = json.loads((root / "best_run" / "results.json").read_text())
    assert results["method"] == settings["method"]
    assert results["flags"]["batch_size"] == settings["batch_size"]


def test_a_recipe_without_validation_split_gets_the_default(recipe, tmp_path):
    from tests.tools.tool_helpers import import_tool

    root, flagfile = recipe
    lines = [line for line in open(flagfile).read().splitlines() if "validation_split" not in line]
    bare = tmp_path / "bare.flags"
    bare.write_text("\n".join(lines) + "\n")
    tune = import_tool("tune")
    tune.FLAGS.unparse_flags()
    tune.parse_flags(["tune.py", f"--flagfile={bare}", f"--directory={tmp_path / 's'}"])
    config, search = tune.build_search()
    assert config.validation_split == tune.DEFAULT_VALIDATION_SPLIT
    assert "NOISY validation split" in tune.objective_line(config)
    assert search["methods"] == ["metacleaner"] and search["subset_sizes"] == [2, 3, 4, 6, 8]
    assert not (tmp_path / "s").exists()
