"""Tests for keras_metacleaner.data.noise_spec: noise flags validated up front."""

import numpy as np
import pytest

from keras_metacleaner.data import NoiseSpec, noise_from_spec


def test_plain_kinds_apply_as_add_label_noise():
    labels = np.arange(100) % 5
    for kind in ("symmetric", "pairflip"):
        spec = noise_from_spec(kind, 0.3)
        assert spec == NoiseSpec(kind, 0.3, noise_type=kind) and spec.injected
        noisy, flipped = spec.apply(labels, 5, seed=0)
        assert flipped.sum() == 30
        assert spec.to_dict() == {"type": kind, "kind": kind, "rate": 0.3, "path": None}
    none = noise_from_spec("none", 0.0)
    assert not none.injected
    noisy, flipped = none.apply(labels, 5, seed=0)
    np.testing.assert_array_equal(noisy, labels) and not flipped.any()
    assert not noise_from_spec("symmetric", 0.0).injected


@pytest.mark.parametrize("suffix, write", [(".npy", np.save), (".csv", None), (".txt", None)])
def test_transition_file_is_read_and_checked(tmp_path, suffix, write):
    matrix = np.array([[0.9, 0.1, 0.0], [0.0, 1.0, 0.0], [0.2, 0.0, 0.8]])
    path = str(tmp_path / f"t{suffix}")
    if write:
        write(path, matrix)
    else:
        np.savetxt(path, matrix, delimiter="," if suffix == ".csv" else " ")
    spec = noise_from_spec(f"transition:{path}", 0.0, num_classes=3)
    np.testing.assert_allclose(spec.matrix, matrix)
    assert spec.injected and spec.to_dict()["path"] == path
    noisy, flipped = spec.apply(np.repeat(np.arange(3), 3000), 3, seed=0)
    assert flipped.mean() == pytest.approx(0.1, abs=0.02)


def test_confusion_with_a_path_scales_to_the_rate(tmp_path):
    path = str(tmp_path / "c.npy")
    np.save(path, np.array([[50, 50, 0], [0, 100, 0], [10, 0, 90]]))
    spec = noise_from_spec(f"confusion:{path}", 0.2, num_classes=3, dataset_name="npz:/x.npz")
    labels = np.repeat(np.arange(3), 100)
    noisy, flipped = spec.apply(labels, 3, seed=0)
    assert flipped.sum() == 60
    assert set(noisy[(labels == 0) & flipped]) == {1}  # the only off-diagonal count of row 0
    assert spec.to_dict() == {
        "type": f"confusion:{path}",
        "kind": "confusion",
        "rate": 0.2,
        "path": path,
    }


def _write(tmp_path, name, matrix):
    path = str(tmp_path / name)
    np.save(path, np.asarray(matrix))
    return path


@pytest.mark.parametrize(
    "noise_type, rate, message",
    [
        ("gaussian", 0.2, "unknown noise type 'gaussian'"),
        ("symmetric", 1.5, r"noise_rate=1.5: expected a finite number in \[0, 1\]"),
        ("symmetric", float("nan"), "noise_rate=nan"),
        ("symmetric", float("inf"), "noise_rate=inf"),
        ("symmetric", "0.2", "noise_rate='0.2'"),
        ("symmetric:x", 0.2, "symmetric takes no file"),
        ("none", 0.4, "choose a noise type"),
        ("transition", 0.0, "expected transition:PATH"),
        ("transition:/nonexistent.npy", 0.0, "'/nonexistent.npy' does not exist"),
        ("confusion", 0.4, "no committed confusion matrix for dataset 'npz:/d.npz'"),
        ("confusion:/nonexistent.npy", 0.4, "does not exist"),
    ],
)
def test_bad_specs_are_refused_up_front(noise_type, rate, message):
    with pytest.raises(ValueError, match=message):
        noise_from_spec(noise_type, rate, num_classes=3, dataset_name="npz:/d.npz")


@pytest.mark.parametrize(
    "kind, matrix, message",
    [
        ("transition", np.eye(4), r"expected shape \(3, 3\) for 3 classes, got \(4, 4\)"),
        ("transition", np.full((3, 3), 0.5), "rows must sum to 1"),
        ("transition", [[1, 0], [0, 1], [0, 0]], "square"),
        ("transition", -np.eye(3), "non-negative"),
        ("confusion", np.ones((4, 4)), r"expected shape \(3, 3\)"),
        ("confusion", np.full((3, 3), np.nan), "finite"),
    ],
)
def test_bad_matrices_name_the_file(tmp_path, kind, matrix, message):
    path = _write(tmp_path, "m.npy", matrix)
    with pytest.raises(ValueError, match=message) as raised:
        noise_from_spec(f"{kind}:{path}", 0.2, num_classes=3)
    assert path in str(raised.value)


def test_unreadable_matrix_file(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("a,b\nc,d\n")
    with pytest.raises(ValueError, match="cannot be read as numbers"):
        noise_from_spec(f"transition:{path}", 0.0)
