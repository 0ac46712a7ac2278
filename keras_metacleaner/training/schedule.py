"""Learning-rate schedule and optimizer of the paper's recipes.

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


def make_optimizer(
    learning_rate: float,
    steps_per_epoch: int,
    lr_decay_epochs: int = 0,
    lr_decay_factor: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
) -> keras.optimizers.Optimizer:
    """The recipes' optimizer: `SGDL2` with a step-decay schedule.

    Args:
        learning_rate: initial learning rate.
        steps_per_epoch: optimizer steps in one epoch (to turn epochs into steps).
        lr_decay_epochs: decay every this many epochs; 0 keeps the rate constant.
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
    if lr_decay_epochs and lr_decay_epochs > 0:
        rate = StepDecay(learning_rate, lr_decay_epochs * steps_per_epoch, lr_decay_factor)
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
