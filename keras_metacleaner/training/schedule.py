"""Learning-rate schedules and the optimizer of the recipes.

Schedules are Keras' own (`keras.optimizers.schedules`): `constant` is a
float, `step` a `PiecewiseConstantDecay` (boundaries at the last step of
every decay period, which reproduces the old `StepDecay` exactly), `cosine`
a `CosineDecay` with its built-in linear warm-up. Keras has no warm-up for the
other two; `LinearWarmup` adds it. `StepDecay` stays registered only so that
`model.keras` files saved with it keep loading; new runs do not use it.

Weight decay, the choice made here: the paper trains with SGD, momentum 0.9
and "weight decay 1e-3 / 5e-3" in the Caffe / PyTorch sense, i.e. an L2 term
whose gradient `wd * w` is added to the loss gradient *before* momentum.
`keras.optimizers.SGD(weight_decay=...)` is decoupled instead (`w -= lr * wd * w`
after the momentum update); with momentum 0.9 the coupled form decays about
1 / (1 - 0.9) = 10 times more strongly at steady state, so the two are not
interchangeable at the paper's values. `SGDL2` implements the coupled form so
the recipes use the paper's numbers verbatim. It applies to every trainable
variable (as Caffe and PyTorch do by default), without touching model losses,
so it needs no regularizers on a pre-built backbone.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_metacleaner.layers.weighting import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class StepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """`initial * factor ** floor(step / decay_steps)`: lr divided every few epochs.

    Kept so that `model.keras` files saved with it load; `make_schedule`
    builds the same rates with Keras' `PiecewiseConstantDecay`.

    Args:
        initial_learning_rate: float, the rate of the first `decay_steps` steps.
        decay_steps: int > 0, optimizer steps between two decays (epochs times
            steps per epoch).
        decay_factor: float in (0, 1], multiplier applied at each decay (0.1 for
            "divide by 10").

    Returns:
        A schedule: `schedule(step) -> learning rate`.

    Example:

    >>> s = StepDecay(0.01, decay_steps=100, decay_factor=0.1)
    >>> [round(float(s(step)), 6) for step in (0, 99, 100, 250)]
    [0.01, 0.01, 0.001, 0.0001]
    """

    def __init__(self, initial_learning_rate: float, decay_steps: int, decay_factor: float):
        if decay_steps <= 0:
            raise ValueError(f"`decay_steps` must be > 0, got {decay_steps}.")
        if not 0.0 < decay_factor <= 1.0:
            raise ValueError(f"`decay_factor` must be in (0, 1], got {decay_factor}.")
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = int(decay_steps)
        self.decay_factor = float(decay_factor)

    def __call__(self, step):
        decays = ops.floor(ops.cast(step, "float32") / float(self.decay_steps))
        return self.initial_learning_rate * ops.power(self.decay_factor, decays)

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_factor": self.decay_factor,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class SGDL2(keras.optimizers.SGD):
    """SGD with coupled L2 weight decay (Caffe / PyTorch `weight_decay`).

    The update is `g' = g + l2 * w`, then the usual (Nesterov) momentum step on
    `g'`. See the module docstring for why this is not Keras' `weight_decay`.

    Args:
        learning_rate: float or schedule.
        momentum: float >= 0.
        l2: float >= 0, the decay coefficient (the paper's "weight decay").
        nesterov: bool.
        **kwargs: passed to `keras.optimizers.SGD` (not `weight_decay`).

    Returns:
        A Keras optimizer.

    Example:

    >>> import numpy as np
    >>> w = keras.Variable(np.ones(2, "float32"))
    >>> opt = SGDL2(learning_rate=0.1, l2=0.5)
    >>> opt.apply([keras.ops.zeros(2)], [w])
    >>> [round(float(v), 4) for v in keras.ops.convert_to_numpy(w)]  # 1 - 0.1 * 0.5 * 1
    [0.95, 0.95]
    """

    def __init__(
        self, learning_rate=0.01, momentum: float = 0.0, l2: float = 0.0, nesterov=False, **kwargs
    ):
        if kwargs.get("weight_decay"):
            raise ValueError("SGDL2 takes `l2` (coupled); do not also pass `weight_decay`.")
        kwargs.pop("weight_decay", None)
        if l2 < 0:
            raise ValueError(f"`l2` must be >= 0, got {l2}.")
        super().__init__(
            learning_rate=learning_rate, momentum=momentum, nesterov=nesterov, **kwargs
        )
        self.l2 = float(l2)

    def update_step(self, gradient, variable, learning_rate):
        if self.l2:
            gradient = ops.add(gradient, ops.multiply(ops.cast(variable, gradient.dtype), self.l2))
        return super().update_step(gradient, variable, learning_rate)

    def get_config(self) -> dict:
        config = super().get_config()
        config["l2"] = self.l2
        config.pop("weight_decay", None)
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to `learning_rate` over `warmup_steps`, then `after`.

    Keras' `CosineDecay` has a warm-up of its own; this adds one to a
    constant rate or a `PiecewiseConstantDecay`. The schedule after the
    warm-up is evaluated at the global step (its decays keep their epochs).

    Args:
        after: a float or a `LearningRateSchedule`, the rate from
            `warmup_steps` on.
        warmup_steps: int > 0.
        learning_rate: the rate the warm-up reaches (the initial rate of `after`).

    Example:

    >>> s = LinearWarmup(0.1, warmup_steps=4, learning_rate=0.1)
    >>> [round(float(s(step)), 4) for step in (0, 2, 4, 9)]
    [0.0, 0.05, 0.1, 0.1]
    """

    def __init__(self, after, warmup_steps: int, learning_rate: float):
        if warmup_steps <= 0:
            raise ValueError(f"`warmup_steps` must be > 0, got {warmup_steps}.")
        if isinstance(after, dict):
            after = keras.optimizers.schedules.deserialize(after)
        self.after = after
        self.warmup_steps = int(warmup_steps)
        self.learning_rate = float(learning_rate)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        after = self.after(step) if callable(self.after) else ops.cast(self.after, "float32")
        warm = self.learning_rate * step / float(self.warmup_steps)
        return ops.where(step < self.warmup_steps, warm, after)

    def get_config(self) -> dict:
        after = self.after
        if isinstance(after, keras.optimizers.schedules.LearningRateSchedule):
            after = keras.optimizers.schedules.serialize(after)
        return {
            "after": after,
            "warmup_steps": self.warmup_steps,
            "learning_rate": self.learning_rate,
        }


def step_boundaries(steps_per_epoch: int, epochs: int, lr_decay_epochs: int) -> list[int]:
    """Boundaries of `PiecewiseConstantDecay` for a decay every `lr_decay_epochs`.

    `PiecewiseConstantDecay` switches after a boundary (`step > b`), so the
    boundary is the last step of each period: the rate of step `s` is
    `initial * factor ** floor(s / period)`, as `StepDecay` computes it.

    Example:

    >>> step_boundaries(10, epochs=30, lr_decay_epochs=10)
    [99, 199]
    """
    period = lr_decay_epochs * steps_per_epoch
    return [k * period - 1 for k in range(1, max(1, -(-epochs // lr_decay_epochs)))]


def make_schedule(
    learning_rate: float,
    steps_per_epoch: int,
    epochs: int,
    schedule: str = "constant",
    lr_decay_epochs: int = 0,
    lr_decay_factor: float = 0.1,
    warmup_epochs: int = 0,
):
    """The learning rate of a run, from Keras' own schedules.

    Args:
        learning_rate: the initial rate (the peak after a warm-up).
        steps_per_epoch: optimizer steps in one epoch.
        epochs: epochs of the stage (cosine reaches 0 at its end; step
            decays within it).
        schedule: `"constant"`, `"step"` or `"cosine"`.
        lr_decay_epochs: step: the decay period in epochs (>= 1).
        lr_decay_factor: step: the multiplier at each decay.
        warmup_epochs: epochs of linear warm-up from 0.

    Returns:
        A float (constant without warm-up) or a `LearningRateSchedule`.

    Example:

    >>> s = make_schedule(0.1, steps_per_epoch=10, epochs=30, schedule="step", lr_decay_epochs=10)
    >>> [round(float(s(step)), 6) for step in (0, 99, 100, 299)]
    [0.1, 0.1, 0.01, 0.001]
    """
    if steps_per_epoch <= 0:
        raise ValueError(f"`steps_per_epoch` must be > 0, got {steps_per_epoch}.")
    schedules = keras.optimizers.schedules
    warmup = int(warmup_epochs) * steps_per_epoch
    if schedule == "cosine":
        total = max(1, epochs * steps_per_epoch - warmup)
        if not warmup:
            return schedules.CosineDecay(learning_rate, decay_steps=total, alpha=0.0)
        return schedules.CosineDecay(
            0.0,
            decay_steps=total,
            alpha=0.0,
            warmup_target=learning_rate,
            warmup_steps=warmup,
        )
    if schedule == "step":
        if lr_decay_epochs < 1:
            raise ValueError(f"schedule='step' needs lr_decay_epochs >= 1, got {lr_decay_epochs}.")
        boundaries = step_boundaries(steps_per_epoch, epochs, lr_decay_epochs)
        rate = (
            schedules.PiecewiseConstantDecay(
                boundaries,
                [learning_rate * lr_decay_factor**k for k in range(len(boundaries) + 1)],
            )
            if boundaries
            else learning_rate  # no decay within the stage
        )
    elif schedule == "constant":
        rate = learning_rate
    else:
        raise ValueError(f"`schedule` must be constant, step or cosine, got {schedule!r}.")
    return LinearWarmup(rate, warmup, learning_rate) if warmup else rate


def rate_at(rate, step: int) -> float:
    """A float or schedule evaluated at `step`.

    Example:

    >>> rate_at(0.5, 10)
    0.5
    """
    if callable(rate):
        return float(keras.ops.convert_to_numpy(rate(step)))
    return float(rate)


def make_optimizer(
    learning_rate,
    steps_per_epoch: int = 1,
    lr_decay_epochs: int = 0,
    lr_decay_factor: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
) -> keras.optimizers.Optimizer:
    """The recipes' optimizer: `SGDL2` (coupled L2) on a rate or schedule.

    Args:
        learning_rate: a float, or a schedule from `make_schedule`.
        steps_per_epoch: steps in one epoch (for `lr_decay_epochs`).
        lr_decay_epochs: with a float rate: a step decay every this many
            epochs (the schedule of `make_schedule(..., "step")`); 0 keeps it.
        lr_decay_factor: multiplier at each decay.
        momentum: SGD momentum.
        weight_decay: coupled L2 coefficient (see `SGDL2`).

    Returns:
        A `keras.optimizers.Optimizer`.

    Example:

    >>> opt = make_optimizer(0.01, steps_per_epoch=10, lr_decay_epochs=5)
    >>> round(float(opt.learning_rate), 6)
    0.01
    """
    if steps_per_epoch <= 0:
        raise ValueError(f"`steps_per_epoch` must be > 0, got {steps_per_epoch}.")
    rate = learning_rate
    if lr_decay_epochs and lr_decay_epochs > 0 and not callable(rate):
        # Open-ended: the decays go on as long as training does.
        rate = keras.optimizers.schedules.PiecewiseConstantDecay(
            step_boundaries(steps_per_epoch, 64 * lr_decay_epochs, lr_decay_epochs),
            [learning_rate * lr_decay_factor**k for k in range(64)],
        )
    return SGDL2(learning_rate=rate, momentum=momentum, l2=weight_decay)


def learning_rate_after(
    learning_rate: float, epochs: int, lr_decay_epochs: int, lr_decay_factor: float
) -> float:
    """The rate a step-decay schedule has reached after `epochs` full epochs.

    Args:
        learning_rate: initial rate.
        epochs: epochs trained.
        lr_decay_epochs: decay period in epochs (0: constant).
        lr_decay_factor: multiplier at each decay.

    Returns:
        float.

    Example:

    >>> round(learning_rate_after(0.01, 80, 20, 0.1), 10)  # the last epoch used 0.01 / 1000
    1e-05
    """
    if not lr_decay_epochs or lr_decay_epochs <= 0 or epochs <= 0:
        return float(learning_rate)
    return float(learning_rate * lr_decay_factor ** ((epochs - 1) // lr_decay_epochs))
