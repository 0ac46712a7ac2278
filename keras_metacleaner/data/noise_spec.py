"""`--noise_type` / `--noise_rate` to labels: parsed and validated before any training.

This module imports only NumPy and the standard library, so a tool can
validate its noise flags (and read the matrix file they name) before
TensorFlow is imported.
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np

#: The forms `--noise_type` takes.
NOISE_TYPES = ("none", "symmetric", "pairflip", "transition:PATH", "confusion", "confusion:PATH")
_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: Confusion counts (rows: true class) of a clean classifier, per dataset, for bare `confusion`.
#: Made by `benchmarks/data/make_fashion_mnist_confusion.py`.
DEFAULT_CONFUSION = {
    "fashion_mnist": os.path.join(_REPO, "benchmarks", "data", "fashion_mnist_confusion.npy"),
}


def check_transition(matrix, num_classes: int | None, where: str = "`transition`") -> np.ndarray:
    """A `[C, C]` row-stochastic float64 matrix, or a ValueError naming `where`.

    Example:

    >>> check_transition(np.eye(2), 2).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"{where}: expected a square [C, C] matrix, got shape {matrix.shape}.")
    if num_classes is not None and matrix.shape != (num_classes, num_classes):
        raise ValueError(
            f"{where}: expected shape ({num_classes}, {num_classes}) for {num_classes} classes, "
            f"got {matrix.shape}."
        )
    if not np.all(np.isfinite(matrix)) or np.any(matrix < 0):
        raise ValueError(f"{where}: entries must be finite and non-negative.")
    sums = matrix.sum(axis=1)
    if not np.allclose(sums, 1.0, atol=1e-4):
        raise ValueError(
            f"{where}: rows must sum to 1 (row-stochastic); row sums are "
            f"{np.round(sums, 6).tolist()}."
        )
    return matrix


def check_confusion(counts, num_classes: int | None, where: str = "`confusion`") -> np.ndarray:
    """A `[C, C]` matrix of non-negative confusion counts (rows: true class), as float64.

    Example:

    >>> check_confusion([[3, 1], [0, 4]], 2).shape
    (2, 2)
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] < 2:
        raise ValueError(f"{where}: expected a square [C, C] matrix, got shape {counts.shape}.")
    if num_classes is not None and counts.shape != (num_classes, num_classes):
        raise ValueError(
            f"{where}: expected shape ({num_classes}, {num_classes}) for {num_classes} classes, "
            f"got {counts.shape}."
        )
    if not np.all(np.isfinite(counts)) or np.any(counts < 0):
        raise ValueError(f"{where}: confusion counts must be finite and non-negative.")
    return counts


def read_matrix(path: str) -> np.ndarray:
    """Reads a matrix from `.npy`, `.csv` (commas) or `.txt` (whitespace).

    Raises:
        ValueError: naming the file when it is missing or unreadable.
    """
    if not os.path.isfile(path):
        raise ValueError(f"matrix file {path!r} does not exist.")
    try:
        if path.endswith(".npy"):
            matrix = np.load(path, allow_pickle=False)
        else:
            matrix = np.loadtxt(path, delimiter=None if path.endswith(".txt") else ",", ndmin=2)
        return np.asarray(matrix, np.float64)
    except (ValueError, OSError) as error:
        raise ValueError(f"matrix file {path!r} cannot be read as numbers: {error}") from None


@dataclasses.dataclass(frozen=True)
class NoiseSpec:
    """Validated label-noise settings; `apply` turns clean labels into noisy ones.

    Build it with `noise_from_spec`. `kind` is `none`, `symmetric`,
    `pairflip`, `transition` (the row-stochastic `matrix` read from `path`)
    or `confusion` (confusion counts in `matrix`, flips scaled to `rate`).
    """

    kind: str
    rate: float
    path: str | None = None
    matrix: np.ndarray | None = dataclasses.field(default=None, compare=False)
    noise_type: str = ""

    @property
    def injected(self) -> bool:
        """Whether `apply` changes any label (transition matrices always may)."""
        return self.kind == "transition" or (self.kind != "none" and self.rate > 0)

    def apply(self, labels, num_classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """`(noisy_labels int32, flipped bool)`; with no noise, the labels unchanged.

        Example:

        >>> spec = noise_from_spec("pairflip", 0.5, num_classes=2)
        >>> int(spec.apply(np.array([0, 0, 1, 1]), 2, seed=0)[1].sum())
        2
        """
        if not self.injected:
            labels = np.asarray(labels, np.int32)
            return labels.copy(), np.zeros(labels.shape, bool)
        from keras_metacleaner.data.noise import add_label_noise

        return add_label_noise(
            labels,
            self.rate,
            self.kind,
            num_classes,
            seed=seed,
            transition=self.matrix if self.kind == "transition" else None,
            confusion=self.matrix if self.kind == "confusion" else None,
        )

    def to_dict(self) -> dict:
        """For results.json: `{"type", "kind", "rate", "path"}` (`path`: the matrix file read)."""
        return {
            "type": self.noise_type or self.kind,
            "kind": self.kind,
            "rate": self.rate,
            "path": self.path,
        }


def noise_from_spec(
    noise_type: str,
    noise_rate: float = 0.0,
    num_classes: int | None = None,
    dataset_name: str | None = None,
) -> NoiseSpec:
    """Parses and validates `--noise_type` and `--noise_rate`, reading any matrix file.

    Call it before training starts: every problem is a `ValueError` naming
    the value or file and what was expected.

    Args:
        noise_type: `none`, `symmetric`, `pairflip`, `transition:PATH` (a
            `[C, C]` row-stochastic matrix, `.npy` / `.csv` / `.txt`; the rate
            is ignored, the matrix sets it), `confusion` (the committed
            confusion counts of the dataset, Fashion-MNIST only) or
            `confusion:PATH` (your own `[C, C]` counts, rows the true class).
        noise_rate: fraction of labels to flip, a finite number in [0, 1].
        num_classes: when given, the matrix size is checked against it.
        dataset_name: the dataset spec (e.g. `fashion_mnist`), to find the
            default confusion counts of bare `confusion`.

    Returns:
        A `NoiseSpec`.

    Example:

    >>> spec = noise_from_spec("symmetric", 0.4)
    >>> spec.kind, spec.rate, spec.injected
    ('symmetric', 0.4, True)
    >>> noise_from_spec("confusion", 0.4, 10, "fashion_mnist").matrix.shape
    (10, 10)
    """
    where = f"noise_type={noise_type!r}"
    if isinstance(noise_rate, bool) or not isinstance(noise_rate, (int, float, np.number)):
        raise ValueError(f"noise_rate={noise_rate!r}: expected a number in [0, 1].")
    rate = float(noise_rate)
    if not math.isfinite(rate) or not 0.0 <= rate <= 1.0:
        raise ValueError(f"noise_rate={noise_rate!r}: expected a finite number in [0, 1].")
    if not isinstance(noise_type, str):
        raise ValueError(f"{where}: expected one of {list(NOISE_TYPES)}.")
    kind, _, path = noise_type.partition(":")
    if kind in ("none", "symmetric", "pairflip"):
        if path:
            raise ValueError(f"{where}: {kind} takes no file.")
        if kind == "none" and rate > 0:
            raise ValueError(
                f"{where} with noise_rate={noise_rate}: choose a noise type (e.g. symmetric) "
                "or set the rate to 0."
            )
        return NoiseSpec(kind, rate, noise_type=noise_type)
    if kind == "transition":
        if not path:
            raise ValueError(f"{where}: expected transition:PATH to a [C, C] matrix file.")
        matrix = check_transition(read_matrix(path), num_classes, f"{where}: {path!r}")
        return NoiseSpec("transition", rate, path, matrix, noise_type)
    if kind == "confusion":
        if not path:
            base = (dataset_name or "").partition(":")[0].partition("?")[0]
            path = DEFAULT_CONFUSION.get(base)
            if path is None:
                raise ValueError(
                    f"{where}: no committed confusion matrix for dataset {dataset_name!r} (only "
                    f"for {sorted(DEFAULT_CONFUSION)}); pass confusion:PATH to [C, C] counts."
                )
            if not os.path.isfile(path):
                raise ValueError(
                    f"{where}: the committed matrix {path!r} is missing (it ships with the "
                    "repository, not the wheel); pass confusion:PATH."
                )
        matrix = check_confusion(read_matrix(path), num_classes, f"{where}: {path!r}")
        return NoiseSpec("confusion", rate, path, matrix, noise_type)
    raise ValueError(f"{where}: unknown noise type {kind!r}; expected one of {list(NOISE_TYPES)}.")
