"""Tests for keras_metacleaner.data.registry: one registry of sources, spec parsing."""

import importlib
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import keras_metacleaner as kmc
from keras_metacleaner.data import registry
from keras_metacleaner.data.registry import SOURCES, Source, check_spec, parse_spec


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("fashion_mnist", ("fashion_mnist", "", {})),
        ("npz:/tmp/a.npz", ("npz", "/tmp/a.npz", {})),
        ("tfds:cifar10_n?label=worse_label", ("tfds", "cifar10_n", {"label": "worse_label"})),
        ("food101n:/d/n?test=/d/f", ("food101n", "/d/n", {"test": "/d/f"})),
        ("folder:C:/x", ("folder", "C:/x", {})),
        ("folder:/x?test_fraction=0.2", ("folder", "/x", {"test_fraction": "0.2"})),
    ],
)
def test_parse_spec(spec, expected):
    assert parse_spec(spec) == expected


@pytest.mark.parametrize(
    "spec, message",
    [
        ("mnist", "Unknown dataset spec 'mnist'"),
        ("", "non-empty"),
        ("npz", "needs a target, e.g. npz:PATH"),
        ("fashion_mnist:/x", r"takes no target \(use \?dir=...\)"),
        ("tfds:a?x=1&x=2", "twice"),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(ValueError, match=message):
        kmc.data.load(spec)
    assert message.split(" ")[0].strip("\\") in (check_spec(spec) or "")


def test_every_source_module_has_a_load_function():
    for source in SOURCES.values():
        assert source.target in registry.TARGET_KINDS
        assert callable(source.load_fn()), source.name


def test_check_target_tells_file_from_directory(tmp_path):
    (tmp_path / "a.npz").write_bytes(b"")
    assert check_spec(f"npz:{tmp_path}/a.npz") is None
    assert check_spec(f"npz:{tmp_path}") == f"{str(tmp_path)!r} is not a file"
    assert check_spec(f"folder:{tmp_path}/a.npz") == f"'{tmp_path}/a.npz' is not a directory"
    assert check_spec(f"clothing1m:{tmp_path}/x") == f"the directory '{tmp_path}/x' does not exist"
    assert check_spec("tfds:anything") is None  # a name, not a path


def test_a_new_source_is_one_module_plus_one_registry_line(monkeypatch, tmp_path):
    module = tmp_path / "toy_source.py"
    module.write_text(
        "import numpy as np\n"
        "import keras_metacleaner as kmc\n"
        "def load(target, options, *, image_size=None, seed=0):\n"
        "    x = np.full((int(target), 2, 2, 1), 7, 'uint8')\n"
        "    return kmc.data.from_arrays(x, np.arange(int(target)) % 2, x, np.zeros(int(target)),\n"
        "                                name='toy:' + target)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    monkeypatch.setitem(SOURCES, "toy", Source("toy", "toy_source", "name", "toy:N"))
    loaded = kmc.data.load("toy:6")
    assert loaded.size == 6 and loaded.info.name == "toy:6" and loaded.view is not None


def test_registry_and_noise_spec_import_no_tensorflow():
    # Tools that defer imports validate their flags with these before TensorFlow loads.
    code = (
        "KMC_DEFER_IMPORTS = True\n"
        "import sys\n"
        "from keras_metacleaner.data.registry import check_spec\n"
        "from keras_metacleaner.data.noise_spec import noise_from_spec\n"
        "assert check_spec('npz:/nonexistent.npz')\n"
        "assert noise_from_spec('confusion', 0.4, 10, 'fashion_mnist').matrix.shape == (10, 10)\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
    )
    root = str(pathlib.Path(registry.__file__).parents[2])
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True)


def test_registry_usage_strings_are_valid_specs_apart_from_placeholders():
    for source in SOURCES.values():
        kind = parse_spec(source.usage.replace("PATH", "/p").replace("ROOT", "/r"))[0]
        assert kind == source.name
    assert np.all([name == source.name for name, source in SOURCES.items()])
