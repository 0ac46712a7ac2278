"""The search space of `TrainingTuner`: methods, subset sizes, learning rates, batch per trial."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import keras_tuner

#: The plain-training method every search runs once, as the reference.
BASELINE = "baseline"


def groups_per_batch(images_per_step: int, subset_size: int, replicas: int = 1) -> int:
    """K subsets of N images: about `images_per_step` images a step, K divisible by the replicas.

    The paper compares subset sizes at a fixed number of images per step
    (K·N ≈ constant). Under a distribution strategy each replica must get
    whole subsets, so K is rounded down to a multiple of the replica count.

    Args:
        images_per_step: the target K·N.
        subset_size: N.
        replicas: replicas in sync (`strategy.num_replicas_in_sync`).

    Returns:
        K >= `replicas`.

    Raises:
        ValueError: not even one subset per replica fits in `images_per_step`.

    Example:

    >>> groups_per_batch(128, 3), groups_per_batch(128, 6, replicas=4)
    (42, 20)
    """
    if subset_size < 1 or replicas < 1:
        raise ValueError(f"subset_size={subset_size} and replicas={replicas} must be >= 1.")
    k = (images_per_step // subset_size) // replicas * replicas
    if k < replicas:
        raise ValueError(
            f"subset_size={subset_size}: images_per_step={images_per_step} holds fewer than one "
            f"subset per replica ({replicas} replicas); raise --batch_size or drop this size."
        )
    return k


@dataclasses.dataclass
class SearchSpace:
    """What a `TrainingTuner` searches, and the training settings of one trial.

    The hyper-parameters are `method` (always including `"baseline"`, plain
    training on single images, run as the first trial of every search),
    `subset_size` (only for the methods that train on subsets) and
    `learning_rate`. A trial's batch is K·N images with
    `K = groups_per_batch(images_per_step, N, replicas)`; the baseline's is
    `images_per_step` rounded down to a multiple of the replicas.

    Args:
        methods: the grouped methods to search (e.g. `("metacleaner",)`);
            `"baseline"` is added.
        subset_sizes: values of N.
        learning_rates: SGD learning rates.
        images_per_step: the K·N every trial aims at (the recipe's
            `batch_size`).
        replicas: replicas in sync of the strategy the trials run under.
        grouped_methods: names of the methods that train on subsets (the
            others get no `subset_size`); None: every method but the baseline.

    Example:

    >>> space = SearchSpace(("metacleaner",), (2, 3), (0.02,), images_per_step=128)
    >>> hp = keras_tuner.HyperParameters()
    >>> space.declare(hp)
    >>> hp.values
    {'method': 'baseline', 'learning_rate': 0.02}
    >>> space.settings({"method": "metacleaner", "subset_size": 3, "learning_rate": 0.02})
    {'method': 'metacleaner', 'learning_rate': 0.02, 'subset_size': 3, 'batch_size': 126}
    """

    methods: Sequence[str] = ("metacleaner",)
    subset_sizes: Sequence[int] = (2, 3, 4, 6, 8)
    learning_rates: Sequence[float] = (0.02,)
    images_per_step: int = 128
    replicas: int = 1
    grouped_methods: Sequence[str] | None = None

    def __post_init__(self):
        methods = [m for m in self.methods if m != BASELINE]
        self.methods = tuple([BASELINE] + list(dict.fromkeys(methods)))
        self.subset_sizes = tuple(int(n) for n in self.subset_sizes)
        self.learning_rates = tuple(float(lr) for lr in self.learning_rates)
        if not self.learning_rates or any(lr <= 0 for lr in self.learning_rates):
            raise ValueError(f"learning_rates={list(self.learning_rates)}: give values > 0.")
        if self.images_per_step < self.replicas:
            raise ValueError(
                f"images_per_step={self.images_per_step} is smaller than the {self.replicas} "
                "replicas."
            )
        if self.grouped:
            if not self.subset_sizes:
                raise ValueError("subset_sizes is empty; give at least one N.")
            for n in self.subset_sizes:
                groups_per_batch(self.images_per_step, n, self.replicas)  # raises if it cannot fit

    @property
    def grouped(self) -> list[str]:
        """The searched methods that train on subsets."""
        if self.grouped_methods is None:
            return [m for m in self.methods if m != BASELINE]
        return [m for m in self.methods if m in self.grouped_methods]

    def declare(self, hp: keras_tuner.HyperParameters) -> None:
        """Declares `method`, `subset_size` (conditional) and `learning_rate` in `hp`."""
        hp.Choice("method", list(self.methods))
        if self.grouped:
            with hp.conditional_scope("method", self.grouped):
                hp.Choice("subset_size", list(self.subset_sizes))
        hp.Choice("learning_rate", list(self.learning_rates))

    def baseline_values(self) -> dict:
        """The hyper-parameter values of the baseline trial."""
        return {"method": BASELINE, "learning_rate": self.learning_rates[0]}

    def batch_size(self, method: str, subset_size: int | None) -> int:
        """Images per step of a trial (K·N for grouped methods)."""
        if method in self.grouped:
            return groups_per_batch(self.images_per_step, subset_size, self.replicas) * subset_size
        return self.images_per_step // self.replicas * self.replicas

    def settings(self, values: dict) -> dict:
        """The training settings (flat `TrainConfig` / flag names) of a trial's values.

        Args:
            values: `trial.hyperparameters.values`.

        Returns:
            `method`, `learning_rate`, `batch_size` and, for grouped methods,
            `subset_size`.
        """
        method = values["method"]
        out = {"method": method, "learning_rate": float(values["learning_rate"])}
        subset_size = None
        if method in self.grouped:
            subset_size = int(values["subset_size"])
            out["subset_size"] = subset_size
        out["batch_size"] = self.batch_size(method, subset_size)
        return out
