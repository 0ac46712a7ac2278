"""Co-teaching (Han et al., NeurIPS 2018) with a forget rate estimated from the data."""

from __future__ import annotations

import copy
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_metacleaner.layers.weighting import PACKAGE, _is_int
from keras_metacleaner.models.metacleaner_model import unscale_loss_for_distribution

#: Per-example losses above this fall into the histogram's last bin.
HISTOGRAM_MAX_LOSS = 10.0
HISTOGRAM_BINS = 200
#: Ashman's D below which the losses count as one mode (no noise).
MIN_SEPARATION = 2.0
#: The estimate never asks to drop more than this share of a batch.
MAX_FORGET_RATE = 0.9


def estimate_forget_rate(
    losses: np.ndarray | None = None,
    *,
    counts: np.ndarray | None = None,
    edges: np.ndarray | None = None,
    iterations: int = 100,
) -> float:
    """The share of mislabelled examples, read from per-example training losses.

    Fits a two-component Gaussian mixture to the losses (or to a histogram
    of them, each bin centre weighted by its count) and returns the weight of
    the component with the higher mean, clipped to `[0, MAX_FORGET_RATE]`,
    or 0 when the two components are not separated (Ashman's D <
    `MIN_SEPARATION`: one mode, nothing to forget).
    A network that has learned the clean majority, but not yet memorised the
    rest, gives mislabelled examples high losses and correct ones low
    losses: the two modes of the mixture (the small-loss criterion that
    co-teaching itself relies on, and the clean-share estimate of DivideMix).

    Args:
        losses: `[n]` per-example losses; or else
        counts: `[bins]` histogram counts, with
        edges: `[bins + 1]` bin edges.
        iterations: EM iterations.

    Returns:
        The estimated noise rate, a float in [0, MAX_FORGET_RATE].

    Example:

    >>> rng = np.random.default_rng(0)
    >>> losses = np.concatenate([rng.normal(0.2, 0.1, 700), rng.normal(3.0, 0.6, 300)])
    >>> round(estimate_forget_rate(np.abs(losses)), 2)
    0.3
    """
    if losses is not None:
        points = np.asarray(losses, "float64").ravel()
        weights = np.ones_like(points)
    else:
        if counts is None or edges is None:
            raise ValueError("Give `losses`, or `counts` with their `edges`.")
        counts = np.asarray(counts, "float64").ravel()
        edges = np.asarray(edges, "float64").ravel()
        if len(edges) != len(counts) + 1:
            raise ValueError(
                f"{len(counts)} counts need {len(counts) + 1} edges, got {len(edges)}."
            )
        points = (edges[:-1] + edges[1:]) / 2
        weights = counts
    keep = np.isfinite(points) & (weights > 0)
    points, weights = points[keep], weights[keep]
    if weights.sum() == 0 or len(points) < 2:
        return 0.0
    weights = weights / weights.sum()
    order = np.argsort(points)
    cumulative = np.cumsum(weights[order])
    # Start from the 10th and 90th percentiles: the low (clean) and the high mode.
    means = np.array([points[order][np.searchsorted(cumulative, q)] for q in (0.1, 0.9)], "float64")
    spread = np.sqrt(np.sum(weights * (points - np.sum(weights * points)) ** 2))
    if spread < 1e-8:
        return 0.0
    variances = np.full(2, spread**2)
    mix = np.array([0.5, 0.5])
    floor = (spread * 1e-3) ** 2 + 1e-12
    for _ in range(iterations):
        log_density = (
            np.log(mix)[None]
            - 0.5 * np.log(2 * np.pi * variances)[None]
            - 0.5 * (points[:, None] - means[None]) ** 2 / variances[None]
        )
        log_density -= log_density.max(axis=1, keepdims=True)
        responsibility = np.exp(log_density)
        responsibility /= responsibility.sum(axis=1, keepdims=True)
        mass = (weights[:, None] * responsibility).sum(axis=0) + 1e-12
        mix = mass / mass.sum()
        means = (weights[:, None] * responsibility * points[:, None]).sum(axis=0) / mass
        variances = np.maximum(
            (weights[:, None] * responsibility * (points[:, None] - means[None]) ** 2).sum(0)
            / mass,
            floor,
        )
    high = int(np.argmax(means))
    # Ashman's D: two modes only when the means are apart by more than about
    # two standard deviations; a single (skewed) mode means no noise to find.
    separation = abs(means[1] - means[0]) * np.sqrt(2.0 / variances.sum())
    if separation < MIN_SEPARATION:
        return 0.0
    return float(np.clip(mix[high], 0.0, MAX_FORGET_RATE))


def forget_rate_schedule(
    epoch: int, forget_rate: float, num_gradual: int, exponent: float
) -> float:
    """Co-teaching's R(T): a linear ramp from 0 to `forget_rate ** exponent`, then `forget_rate`.

    As in the authors' code: `np.linspace(0, τ**c, num_gradual)` over the
    first `num_gradual` epochs, τ after.

    Example:

    >>> [round(forget_rate_schedule(e, 0.4, 3, 1), 2) for e in range(5)]
    [0.0, 0.2, 0.4, 0.4, 0.4]
    """
    if epoch >= num_gradual:
        return float(forget_rate)
    if num_gradual == 1:
        return float(forget_rate**exponent)
    return float(forget_rate**exponent * epoch / (num_gradual - 1))


def _read(variable: Any) -> float:
    """A scalar variable's value, also when it is mirrored across replicas."""
    return float(keras.ops.convert_to_numpy(variable))


def histogram_edges() -> np.ndarray:
    """Edges of the bins in which `CoTeachingModel` counts per-example losses."""
    return np.linspace(0.0, HISTOGRAM_MAX_LOSS, HISTOGRAM_BINS + 1)


class ForgetRateSchedule(keras.callbacks.Callback):
    """Sets a `CoTeachingModel`'s forget rate each epoch (Han et al.'s R(T)).

    With an estimated rate (`forget_rate=None`), it also fits the estimate at
    the end of every epoch of the ramp from that epoch's per-example losses
    of the first network, and freezes it when the ramp ends. `CoTeachingModel.fit`
    adds this callback itself when it is missing.

    Example:

    >>> schedule = ForgetRateSchedule()  # model.fit(..., callbacks=[schedule])
    """

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        model = self.model
        model.loss_histogram.assign(np.zeros(HISTOGRAM_BINS, "float32"))
        model.current_forget_rate.assign(
            forget_rate_schedule(
                epoch, float(model.forget_rate_value), model.num_gradual, model.exponent
            )
        )

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        model = self.model
        if model.forget_rate is None and epoch < model.num_gradual:
            counts = keras.ops.convert_to_numpy(model.loss_histogram)
            model.estimated_forget_rate.assign(
                estimate_forget_rate(counts=counts, edges=histogram_edges())
            )
        if logs is not None:
            logs["forget_rate"] = _read(model.current_forget_rate)


@keras.saving.register_keras_serializable(package=PACKAGE)
class CoTeachingModel(keras.Model):
    """Two classifiers that each train on the other's small-loss share of a batch.

    A network fits clean examples before it memorises mislabelled ones, so
    early in training the examples it finds hardest are mostly the
    mislabelled ones. Co-teaching trains two networks; in every batch each
    network ranks the examples by its own cross-entropy, and the other
    network is updated on the `1 - R(T)` share with the smallest loss.
    Because the two networks err differently, each filters out mistakes the
    other would have made its own. R(T) ramps linearly from 0 to the forget
    rate τ over `num_gradual` epochs (`ForgetRateSchedule`).

    τ should be the noise rate, which a user does not know. With
    `forget_rate=None` (the default) it is estimated from the data: at the
    end of each epoch of the ramp, a two-component Gaussian mixture is fitted
    to the first network's per-example training losses of that epoch
    (`estimate_forget_rate`), and the weight of the high-loss component
    becomes τ; the estimate is frozen when the ramp ends, so that later
    memorisation (which lowers the losses of mislabelled examples) cannot
    shrink it. The true noise rate is never an input.

    Training batches are `(x [B, H, W, C], y [B])`. `fit` adds a
    `ForgetRateSchedule` callback when none is given and logs
    `forget_rate`. Prediction, evaluation and `inference_model()` use the
    first network.

    Args:
        classifier_a: `keras.Model`, images -> probabilities `[B, C]`.
        classifier_b: a second model of the same kind, initialised
            differently (two `plain_classifier`s on two backbones).
        forget_rate: float in [0, 1) or None (estimated).
        num_gradual: int >= 1. Epochs of the linear ramp (T_k = 10).
        exponent: float > 0. c in the ramp to τ^c (1).
        **kwargs: passed to `keras.Model`.

    Example:

    >>> import keras_metacleaner as kmc
    >>> a = kmc.models.plain_classifier(kmc.models.small_cnn(name="a"), 10, name="net_a")
    >>> b = kmc.models.plain_classifier(kmc.models.small_cnn(name="b"), 10, name="net_b")
    >>> model = CoTeachingModel(a, b)
    >>> model.forget_rate is None
    True
    """

    def __init__(
        self,
        classifier_a: keras.Model,
        classifier_b: keras.Model,
        forget_rate: float | None = None,
        num_gradual: int = 10,
        exponent: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if forget_rate is not None and not 0.0 <= forget_rate < 1.0:
            raise ValueError(f"`forget_rate` must be in [0, 1) or None, got {forget_rate!r}.")
        if not _is_int(num_gradual) or num_gradual < 1:
            raise ValueError(f"`num_gradual` must be an integer >= 1, got {num_gradual!r}.")
        if not exponent > 0:
            raise ValueError(f"`exponent` must be > 0, got {exponent!r}.")
        if classifier_a.output_shape != classifier_b.output_shape:
            raise ValueError(
                "`classifier_a` and `classifier_b` must output the same shape, got "
                f"{classifier_a.output_shape} and {classifier_b.output_shape}."
            )
        if classifier_a is classifier_b:
            raise ValueError("`classifier_a` and `classifier_b` must be two different models.")
        self.classifier_a = classifier_a
        self.classifier_b = classifier_b
        self.forget_rate = None if forget_rate is None else float(forget_rate)
        self.num_gradual = int(num_gradual)
        self.exponent = float(exponent)
        # Saved with the weights, so a resumed run keeps its schedule.
        self.current_forget_rate = self.add_weight(
            shape=(), initializer="zeros", trainable=False, name="current_forget_rate"
        )
        self.estimated_forget_rate = self.add_weight(
            shape=(), initializer="zeros", trainable=False, name="estimated_forget_rate"
        )
        # This epoch's per-example losses of the first network, counted in
        # fixed bins (summed over replicas), for the estimate of τ.
        self.loss_histogram = self.add_weight(
            shape=(HISTOGRAM_BINS,),
            initializer="zeros",
            trainable=False,
            aggregation="only_first_replica",
            name="loss_histogram",
        )
        self.built = True

    @property
    def forget_rate_value(self) -> float:
        """τ: the given forget rate, or the current estimate."""
        if self.forget_rate is not None:
            return self.forget_rate
        return _read(self.estimated_forget_rate)

    def call(self, inputs, training=None):
        return self.classifier_a(inputs, training=training)

    def fit(self, *args: Any, **kwargs: Any) -> keras.callbacks.History:
        """`keras.Model.fit`, with a `ForgetRateSchedule` added when `callbacks` has none."""
        callbacks = list(kwargs.pop("callbacks", None) or [])
        if not any(isinstance(c, ForgetRateSchedule) for c in callbacks):
            callbacks.append(ForgetRateSchedule())
        return super().fit(*args, callbacks=callbacks, **kwargs)

    def _small_loss_mask(self, losses, rate):
        """1.0 for the `round((1 - rate)·B)` smallest losses of this replica's batch, else 0."""
        size = ops.shape(losses)[0]
        keep = ops.maximum(
            ops.cast(ops.round((1.0 - rate) * ops.cast(size, "float32")), "int32"), 1
        )
        rank = ops.argsort(ops.argsort(losses))
        return ops.cast(rank < keep, "float32")

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if sample_weight is not None:
            raise ValueError("CoTeachingModel does not take sample weights.")
        y = ops.reshape(ops.cast(y, "int32"), (-1,))
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            p_a = self.classifier_a(x, training=True)
            p_b = self.classifier_b(x, training=True)
            loss_a = keras.losses.sparse_categorical_crossentropy(y, p_a)
            loss_b = keras.losses.sparse_categorical_crossentropy(y, p_b)
            rate = ops.cast(self.current_forget_rate, "float32")
            # Each network learns from the examples the OTHER finds easy.
            keep_for_b = ops.stop_gradient(self._small_loss_mask(loss_a, rate))
            keep_for_a = ops.stop_gradient(self._small_loss_mask(loss_b, rate))
            loss = ops.sum(keep_for_a * loss_a) / ops.sum(keep_for_a) + ops.sum(
                keep_for_b * loss_b
            ) / ops.sum(keep_for_b)
            # The mean of each replica's loss: divide as Keras' losses do.
            loss = loss / replicas
            scaled_loss = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled_loss, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        self._count_losses(ops.stop_gradient(loss_a))
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(
                    unscale_loss_for_distribution(loss), sample_weight=ops.shape(y)[0]
                )
        return self.compute_metrics(x, y, p_a)

    def _count_losses(self, losses):
        width = HISTOGRAM_MAX_LOSS / HISTOGRAM_BINS
        bins = ops.clip(ops.cast(ops.floor(losses / width), "int32"), 0, HISTOGRAM_BINS - 1)
        counts = ops.sum(ops.one_hot(bins, HISTOGRAM_BINS), axis=0)
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            # Every replica adds the global batch's counts; the first's is kept.
            counts = context.all_reduce(tf.distribute.ReduceOp.SUM, counts)
        self.loss_histogram.assign_add(counts)

    def inference_model(self) -> keras.Model:
        """The first network: images -> probabilities, sharing this model's weights.

        Returns:
            `classifier_a` (functional, exportable).
        """
        return self.classifier_a

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "classifier_a": keras.saving.serialize_keras_object(self.classifier_a),
            "classifier_b": keras.saving.serialize_keras_object(self.classifier_b),
            "forget_rate": self.forget_rate,
            "num_gradual": self.num_gradual,
            "exponent": self.exponent,
        }

    @classmethod
    def from_config(cls, config: dict) -> CoTeachingModel:
        config = copy.deepcopy(config)
        for key in ("classifier_a", "classifier_b"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
