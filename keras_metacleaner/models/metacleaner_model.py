"""MetaCleanerModel: backbone -> MetaCleaner -> classifier, trained on class subsets."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from keras_metacleaner.layers.global_batch import global_mean
from keras_metacleaner.layers.metacleaner import MetaCleaner
from keras_metacleaner.layers.weighting import DEFAULT_WEIGHTING, PACKAGE, Weighting, _is_int
from keras_metacleaner.models.presets import PRESETS

MODES = ("hallucinate", "loss_reweight")
#: How the hallucinated loss weighs each subset: equally (None, the paper),
#: or by the largest or the mean α of its members.
SUBSET_LOSS_WEIGHTS = (None, "max_alpha", "mean_alpha")
#: How the α-weighted losses are scaled: by α itself (None, `metacleaner_v1`/`v2`), or
#: by α over its mean across the (global) batch (`"batch"`, since `metacleaner_v3`).
LOSS_WEIGHT_NORMALIZATIONS = (None, "batch")
#: The smallest batch mean of α that `"batch"` divides by: a batch whose members
#: all sit at the floor is trained as plain training would, not 20 times harder.
MIN_MEAN_WEIGHT = 0.05
#: The value of a loss option that takes the chosen weighting's documented
#: combination (`Weighting.default_member_loss_weight` / `default_subset_loss_weights`).
AUTO = "auto"
#: The losses of the default method (`PRESETS["metacleaner"]`).
DEFAULT_SUBSET_LOSS_WEIGHTS = PRESETS["metacleaner"]["subset_loss_weights"]
DEFAULT_MEMBER_LOSS_WEIGHT = PRESETS["metacleaner"]["member_loss_weight"]
# Counters of invalid training batches, kept out of the logs (see `_count_invalid`).
_CHECK_METRICS = ("invalid_label_subsets", "invalid_subset_size_steps")


def unscale_loss_for_distribution(loss: Any) -> Any:
    """Undoes the 1/replicas that Keras' losses apply, for the `loss` metric."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss if replicas == 1 else loss * ops.cast(replicas, loss.dtype)


def _resolve_losses(
    mode: str, weighting: Weighting, member_loss_weight: float | str, subset_loss_weights: Any
) -> tuple[float, str | None]:
    """The loss options in effect: `"auto"` becomes the weighting's documented value."""
    if mode == "loss_reweight":
        # The reweighted loss is already per member, weighted by α.
        if member_loss_weight not in (AUTO, 0) or subset_loss_weights not in (AUTO, None):
            raise ValueError(
                "`member_loss_weight` and `subset_loss_weights` apply in mode='hallucinate' only; "
                f"mode='loss_reweight' got {member_loss_weight!r} and {subset_loss_weights!r}."
            )
        return 0.0, None
    if member_loss_weight == AUTO:
        member_loss_weight = weighting.default_member_loss_weight
    if subset_loss_weights == AUTO:
        subset_loss_weights = weighting.default_subset_loss_weights
    return float(member_loss_weight), subset_loss_weights


@keras.saving.register_keras_serializable(package=PACKAGE)
class MetaCleanerModel(keras.Model):
    """A classifier trained with MetaCleaner (Zhang, Wang, Qiao, CVPR 2019).

    Training consumes batches of K subsets of N images that share a noisy
    label: `x: [K, N, H, W, C]`, `y: [K]` (or `[K, N]`, equal within a
    subset). Each step shuffles the order inside every subset (section 3.3),
    runs the backbone on the K·N images, hallucinates one clean feature per
    subset with `MetaCleaner` and trains the classifier on it. At test time
    (`evaluate`, `predict`, `__call__` on `[B, H, W, C]`) the cleaner is
    removed: image -> backbone -> classifier.

    Progress bars and the History show `alpha_mean`, `alpha_std` and
    `alpha_floor`, the share of α within 1e-3 of the lowest value the
    weighting allows (near 1.0 means the weighting is dead).

    The named methods are complete configurations: `from_preset("metacleaner")`
    (this project's default), `from_preset("paper")` and
    `from_preset("loss_reweight")` (see `PRESETS`). Naming only a weighting
    gives that weighting's documented losses: the loss options left at
    `"auto"` take `weighting.default_member_loss_weight` and
    `weighting.default_subset_loss_weights` (the paper's pure hallucination
    for the learned weightings of Table 2, the default method's losses for
    `label_confidence` / `label_posterior`), and `get_config` stores the
    resolved values.

    Args:
        backbone: `keras.Model` from images `[B, H, W, C]` (raw pixels, its
            own preprocessing inside) to features `[B, D]`.
        num_classes: int >= 2 (Python or NumPy integer). Number of classes.
        subset_size: int >= 1. N.
        weighting: a Noisy Weighting name (see
            `keras_metacleaner.layers.WEIGHTINGS`) or `Weighting` layer.
        hidden_units: int. Hidden width of the weighting.
        mode: `"hallucinate"` (Eq. 3, the paper's method) or
            `"loss_reweight"` (Table 3, I: each image is classified on its
            own and its loss weighted by `N·α_i / Σα`; normalising within the
            subset stops the loss from simply driving every α to its floor).
        shuffle_subsets: bool. Shuffle the order inside each subset every
            step (section 3.3: the FC weightings see positions).
        seed: int or None. Seed of the in-subset shuffling.
        member_loss_weight: float >= 0 or `"auto"`. In `"hallucinate"` mode,
            adds this times the cross-entropy of each member classified on
            its own, weighted by its α (gradient stopped at α): the
            classifier also sees every image, in proportion to how much the
            weighting trusts its label. 0 is the paper's method. Must be 0
            or `"auto"` in `"loss_reweight"` mode, whose loss is already per
            member.
        subset_loss_weights: `None`, `"max_alpha"`, `"mean_alpha"` or
            `"auto"`. In `"hallucinate"` mode, weighs each subset's loss
            equally (None, the paper) or by the largest / the mean α of its
            members (gradient stopped): Eq. 3 divides by Σα, which hides
            that every member of a subset looks mislabelled; this weight does
            not. Must be None or `"auto"` in `"loss_reweight"` mode.
        bootstrap_after_epochs: int >= 0 or None. From this epoch on
            (counted from 0 in `fit`), the member loss also trains each
            member towards the network's own prediction, weighted by
            `1 - α`: the members the cleaner distrusts are relabelled
            instead of only down-weighted (hard bootstrapping, Reed et al.
            2015, with the cleaner's α as the trust). The warm-up keeps the
            early, mostly wrong predictions from teaching themselves; after
            it, bootstrapping stops the late memorisation of pair flips.
            None never bootstraps (`metacleaner_v1`, the paper); `"auto"` takes
            the weighting's documented warm-up (5 epochs for `label_posterior`,
            the default since `metacleaner_v2`) where there is a member loss.
            An integer needs `mode="hallucinate"` and `member_loss_weight > 0`. `fit` adds
            the callback that switches it on; the switch is a weight of the
            model, so an interrupted run resumes in the same state.
        loss_weight_normalization: None, `"batch"` or `"auto"`. In
            `"hallucinate"` mode, how the α-weighted losses are scaled. None
            weighs by α itself, so the step on the members the cleaner trusts
            shrinks with the clean share (to a fifth at 80% noise). `"batch"`
            divides the member loss (its label term and its bootstrap term
            alike, keeping each member's balance α : 1 - α) by the mean α
            over the global batch, and the subset weights by their own mean
            (at least `MIN_MEAN_WEIGHT`, gradient stopped): the label term is
            then the self-normalised estimate Σα_i·ℓ_i / Σα_i of the trusted
            members' loss, a step as large as plain training on them would
            take at any noise rate; on clean data, where α ≈ 1, both are
            plain training. `"auto"` takes the weighting's documented value
            (`"batch"` for `label_posterior`, the default since
            `metacleaner_v3`) where there is an α-weighted loss.
        **kwargs: passed to `keras.Model`.

    Returns:
        Probabilities `[B, num_classes]` for images, `[K, num_classes]` for
        subsets `[K, N, H, W, C]`.

    Raises:
        ValueError: an argument out of range, naming it. While training, a
            batch of the wrong shape raises `ValueError` when it is traced
            and `tf.errors.InvalidArgumentError` when only its run-time shape
            is wrong (a retraced step relaxes static shapes); labels that
            differ inside a subset or lie outside `[0, num_classes)` raise
            `InvalidArgumentError`. Under `jit_compile=True`, where XLA drops
            TensorFlow's assertions, the same batches are counted inside the
            step and the error is raised after it returns, so at most the
            steps of one `steps_per_execution` have been applied by then.

    Example:

    >>> import keras_metacleaner as kmc
    >>> backbone = kmc.models.small_cnn((28, 28, 1))
    >>> model = kmc.MetaCleanerModel(backbone, num_classes=10, subset_size=4)
    >>> tuple(model(keras.ops.zeros((2, 28, 28, 1))).shape)
    (2, 10)
    """

    #: Set by Keras' trainer (untyped): declared for the type checker.
    train_function: Any

    def __init__(
        self,
        backbone: keras.Model,
        num_classes: int,
        subset_size: int,
        weighting: str | Weighting = DEFAULT_WEIGHTING,
        hidden_units: int = 384,
        mode: str = "hallucinate",
        shuffle_subsets: bool = True,
        seed: int | None = None,
        member_loss_weight: float | str = AUTO,
        subset_loss_weights: str | None = AUTO,
        bootstrap_after_epochs: int | None | str = AUTO,
        loss_weight_normalization: str | None = AUTO,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not _is_int(num_classes) or num_classes < 2:
            raise ValueError(f"`num_classes` must be an integer >= 2, got {num_classes!r}.")
        if not _is_int(subset_size) or subset_size < 1:
            raise ValueError(f"`subset_size` must be an integer >= 1, got {subset_size!r}.")
        if mode not in MODES:
            raise ValueError(f"`mode` must be one of {MODES}, got {mode!r}.")
        if subset_loss_weights != AUTO and subset_loss_weights not in SUBSET_LOSS_WEIGHTS:
            raise ValueError(
                f"`subset_loss_weights` must be one of {SUBSET_LOSS_WEIGHTS} or 'auto', "
                f"got {subset_loss_weights!r}."
            )
        if member_loss_weight != AUTO and (
            isinstance(member_loss_weight, (str, bool))
            or not np.isfinite(member_loss_weight)
            or member_loss_weight < 0
        ):
            raise ValueError(
                "`member_loss_weight` must be a finite number >= 0 or 'auto', "
                f"got {member_loss_weight!r}."
            )
        if len(backbone.output_shape) != 2:
            raise ValueError(
                "`backbone` must output a feature vector [B, D] (add global pooling); its output "
                f"shape is {backbone.output_shape}."
            )
        self.backbone = backbone
        self.num_classes = int(num_classes)
        self.subset_size = int(subset_size)
        self.mode = mode
        self.shuffle_subsets = bool(shuffle_subsets)
        self.seed = seed
        self.cleaner = MetaCleaner(
            self.subset_size, weighting, hidden_units, return_weights=True, name="metacleaner"
        )
        self.member_loss_weight, self.subset_loss_weights = _resolve_losses(
            mode, self.cleaner.weighting, member_loss_weight, subset_loss_weights
        )
        # Bootstrapping relabels members through the member loss: it needs one.
        has_member_loss = self.mode == "hallucinate" and self.member_loss_weight > 0
        if bootstrap_after_epochs == AUTO:
            # The weighting's documented warm-up, where there is a member loss to use it.
            bootstrap_after_epochs = (
                self.cleaner.weighting.default_bootstrap_after_epochs if has_member_loss else None
            )
        if bootstrap_after_epochs is not None and (
            not _is_int(bootstrap_after_epochs) or int(bootstrap_after_epochs) < 0
        ):
            raise ValueError(
                "`bootstrap_after_epochs` must be an integer >= 0 or None, "
                f"got {bootstrap_after_epochs!r}."
            )
        if bootstrap_after_epochs is not None and not has_member_loss:
            raise ValueError(
                "`bootstrap_after_epochs` relabels members through the member loss: it needs "
                "mode='hallucinate' and member_loss_weight > 0, got "
                f"mode={self.mode!r}, member_loss_weight={self.member_loss_weight!r}."
            )
        self.bootstrap_after_epochs = (
            None if bootstrap_after_epochs is None else int(bootstrap_after_epochs)
        )
        has_alpha_losses = self.mode == "hallucinate" and (
            self.member_loss_weight > 0 or self.subset_loss_weights is not None
        )
        if loss_weight_normalization == AUTO:
            loss_weight_normalization = (
                self.cleaner.weighting.default_loss_weight_normalization
                if has_alpha_losses
                else None
            )
        if loss_weight_normalization not in LOSS_WEIGHT_NORMALIZATIONS:
            raise ValueError(
                f"`loss_weight_normalization` must be one of {LOSS_WEIGHT_NORMALIZATIONS} or "
                f"'auto', got {loss_weight_normalization!r}."
            )
        if loss_weight_normalization is not None and not has_alpha_losses:
            raise ValueError(
                "`loss_weight_normalization` scales the α-weighted losses: it needs "
                "mode='hallucinate' with member_loss_weight > 0 or subset_loss_weights, got "
                f"mode={self.mode!r}, member_loss_weight={self.member_loss_weight!r}, "
                f"subset_loss_weights={self.subset_loss_weights!r}."
            )
        self.loss_weight_normalization = loss_weight_normalization
        if self.bootstrap_after_epochs is not None:
            # 0.0 during the warm-up, 1.0 after: set by `BootstrapSwitch` at each epoch's
            # start, saved with the weights (BackupAndRestore resumes in the same state).
            self.bootstrap_weight = self.add_weight(
                shape=(),
                initializer="zeros",
                trainable=False,
                name="bootstrap_weight",
                aggregation="only_first_replica",
            )
        self.classifier = layers.Dense(self.num_classes, name="classifier")
        # float32 output under mixed precision: softmax and the loss stay stable.
        self.probabilities = layers.Activation("softmax", dtype="float32", name="probabilities")
        self._member_loss_fn = keras.losses.SparseCategoricalCrossentropy()
        self.seed_generator = keras.random.SeedGenerator(seed, name="subset_shuffle")
        self.alpha_mean = keras.metrics.Mean(name="alpha_mean")
        self.alpha_std = keras.metrics.Mean(name="alpha_std")
        self.alpha_floor = keras.metrics.Mean(name="alpha_floor")
        # Not in the logs: read after each step under XLA (`make_train_function`).
        self.invalid_label_subsets = keras.metrics.Sum(name=_CHECK_METRICS[0])
        self.invalid_subset_size_steps = keras.metrics.Sum(name=_CHECK_METRICS[1])

        feature_dim = backbone.output_shape[-1]
        self.cleaner.build((None, self.subset_size, feature_dim))
        self.classifier.build((None, feature_dim))
        self.probabilities.build((None, self.num_classes))
        self.built = True

    @classmethod
    def from_preset(
        cls,
        name: str,
        /,
        backbone: keras.Model,
        num_classes: int,
        subset_size: int,
        **overrides: Any,
    ) -> MetaCleanerModel:
        """The model of a named method (`PRESETS`), with optional overrides.

        Args:
            name: `"metacleaner"` (this project's default), `"paper"` or
                `"loss_reweight"`.
            backbone: images -> features `[B, D]`.
            num_classes: number of classes.
            subset_size: N.
            **overrides: any other constructor argument; it replaces the
                preset's value (a weighting named here keeps the preset's
                losses: the result records both).

        Returns:
            A `MetaCleanerModel`.

        Example:

        >>> import keras_metacleaner as kmc
        >>> m = MetaCleanerModel.from_preset("paper", kmc.models.small_cnn(), 10, 4)
        >>> type(m.weighting).__name__, m.member_loss_weight, m.subset_loss_weights
        ('DenseWeighting', 0.0, None)
        """
        if name not in PRESETS:
            raise ValueError(f"Unknown preset {name!r}; expected one of {sorted(PRESETS)}.")
        arguments = {**PRESETS[name], **overrides}
        return cls(backbone, num_classes, subset_size, **arguments)

    @property
    def image_shape(self) -> tuple:
        """`(H, W, C)` of the images the backbone takes."""
        return tuple(self.backbone.input_shape[1:])

    @property
    def weighting(self) -> Weighting:
        return self.cleaner.weighting

    # ------------------------------------------------------------------ checks
    def _check_images(self, x: Any, rank: int, what: str) -> None:
        shape = tuple(x.shape)
        if len(shape) != rank:
            raise ValueError(
                f"{what} must have rank {rank}, got shape {shape}. "
                + (
                    "Training batches are K subsets of N images: x [K, N, H, W, C], y [K]; "
                    "build them with keras_metacleaner.data.group_by_class."
                    if rank == 5
                    else ""
                )
            )
        if rank == 5 and shape[1] is not None and shape[1] != self.subset_size:
            raise ValueError(
                f"Subsets must hold subset_size={self.subset_size} images, got N={shape[1]} "
                f"(x shape {shape})."
            )
        expected = self.image_shape
        got = shape[rank - 3 :]
        if any(e is not None and g is not None and e != g for e, g in zip(expected, got)):
            raise ValueError(
                f"{what}: images of shape {got} do not match the backbone's {expected}."
            )

    def _subset_labels(self, x, y):
        """Validates subset labels: int32 `[K]`, and 1.0 when every subset is valid, else 0.0.

        Invalid labels are replaced by 0 so that, under XLA (which drops the
        assertions), the step stays finite; the caller multiplies the loss by
        the flag, so such a batch gives zero gradients.
        """
        if y is None:
            raise ValueError("MetaCleanerModel needs labels y of shape [K] or [K, N] to train.")
        y = ops.convert_to_tensor(y)
        if y.shape.rank is None:
            # A step retraced for labels of both ranks relaxes to unknown rank.
            y = tf.reshape(y, (tf.shape(y)[0], -1))
        if len(y.shape) not in (1, 2) or (
            len(y.shape) == 2 and y.shape[1] not in (None, 1, self.subset_size)
        ):
            raise ValueError(
                f"Labels must have shape [K] or [K, N={self.subset_size}], got {tuple(y.shape)}."
            )
        if "float" in str(y.dtype):
            raise ValueError(f"Labels must be integer class ids, got dtype {y.dtype}.")
        y = tf.cast(y, tf.int32)
        checks = [
            tf.debugging.assert_equal(
                tf.shape(y)[0], tf.shape(x)[0], message="Labels and subsets differ in number (K)."
            ),
            tf.debugging.assert_non_negative(y, message="Labels must be class ids >= 0; got"),
            tf.debugging.assert_less(
                y,
                self.num_classes,
                message=f"Labels must be class ids in [0, {self.num_classes}); got",
            ),
        ]
        invalid = (y < 0) | (y >= self.num_classes)
        if len(y.shape) == 2:
            checks.append(
                tf.debugging.assert_equal(
                    y, y[:, :1], message="All labels inside one subset must be equal; got"
                )
            )
            invalid = invalid | (y != y[:, :1])
            invalid = tf.reduce_any(invalid, axis=1)
            y = y[:, 0]
        # XLA drops the assertions above: count the bad subsets as well, for
        # `make_train_function` to raise on.
        num_invalid = tf.reduce_sum(tf.cast(invalid, "float32"))
        self.invalid_label_subsets.update_state(num_invalid)
        y = tf.where((y < 0) | (y >= self.num_classes), tf.zeros_like(y), y)
        with tf.control_dependencies(checks):
            return tf.identity(y), tf.cast(num_invalid == 0, "float32")

    def _check_subset_size(self, x):
        """`x` after a run-time check of N (a retraced step relaxes the static shape)."""
        size = tf.shape(x)[1]
        self.invalid_subset_size_steps.update_state(
            tf.cast(tf.not_equal(size, self.subset_size), "float32")
        )
        check = tf.debugging.Assert(
            tf.equal(size, self.subset_size),
            [f"Subsets must hold subset_size={self.subset_size} images, got N =", size],
        )
        with tf.control_dependencies([check]):
            return tf.identity(x)

    # ----------------------------------------------------------------- forward
    def _subset_features(self, x, training):
        """Backbone on K·N images, reshaped back to `[K, N, D]`."""
        shape = ops.shape(x)
        flat = ops.reshape(x, (shape[0] * shape[1], *self.image_shape))
        features = self.backbone(flat, training=training)
        return ops.reshape(features, (shape[0], shape[1], features.shape[-1]))

    def _forward_subsets(self, x, labels, training):
        """Returns subset probabilities `[K, C]`, α `[K, N]` and member logits."""
        features = self._subset_features(x, training)
        member_logits = None
        class_scores = None
        # Members are classified on their own only where something reads it:
        # the losses that need them (training) and label-scoring weightings.
        needs_member_loss = training and (self.mode == "loss_reweight" or self.member_loss_weight)
        if needs_member_loss or self.weighting.uses_class_scores:
            member_logits = self.classifier(features)
        if self.weighting.uses_class_scores:
            if labels is None:
                # No labels (prediction): score members against the subset's
                # most likely class under the plain mean.
                mean_probs = ops.mean(ops.softmax(ops.cast(member_logits, "float32")), axis=1)
                labels = ops.argmax(mean_probs, axis=-1)
            log_probs = ops.log_softmax(ops.cast(member_logits, "float32"), axis=-1)
            class_scores = self.weighting.class_scores(log_probs, labels)
        clean, alpha = self.cleaner(features, class_scores)
        probabilities = self.probabilities(self.classifier(clean))
        return probabilities, alpha, member_logits

    def call(self, inputs, training=None):
        if len(inputs.shape) == 5:
            self._check_images(inputs, 5, "Subsets")
            return self._forward_subsets(inputs, None, training)[0]
        self._check_images(inputs, 4, "Images")
        return self.probabilities(self.classifier(self.backbone(inputs, training=training)))

    def _shuffle_within_subsets(self, x):
        keys = keras.random.uniform(ops.shape(x)[:2], seed=self.seed_generator)
        return tf.gather(x, ops.argsort(keys, axis=1), batch_dims=1)

    # ---------------------------------------------------------------- training
    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        self._check_images(x, 5, "Training inputs x")
        x = self._check_subset_size(x)
        labels, valid = self._subset_labels(x, y)
        if self.shuffle_subsets:
            x = self._shuffle_within_subsets(x)

        with tf.GradientTape() as tape:
            probabilities, alpha, member_logits = self._forward_subsets(x, labels, training=True)
            if self.mode == "hallucinate":
                loss = self.compute_loss(
                    x=x,
                    y=labels,
                    y_pred=probabilities,
                    sample_weight=self._subset_weights(alpha, sample_weight),
                    training=True,
                )
                if self.member_loss_weight:
                    loss = loss + self.member_loss_weight * self._member_loss(
                        labels, ops.stop_gradient(alpha), member_logits, sample_weight
                    )
            else:
                loss = self._reweighted_loss(x, labels, alpha, member_logits, sample_weight)
            # Keras' losses already divide their mean by the number of replicas
            # (keras.losses.Loss -> scale_loss_for_distribution), so the summed
            # replica gradients are the gradient of the global-batch mean.
            # 0 for a batch with invalid labels (raised after the step under XLA).
            scaled_loss = self.optimizer.scale_loss(loss * valid)

        gradients = tape.gradient(scaled_loss, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        self._update_alpha_metrics(alpha)
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(
                    unscale_loss_for_distribution(loss), sample_weight=ops.shape(labels)[0]
                )
        logs = self.compute_metrics(x, labels, probabilities, sample_weight=sample_weight)
        return {name: value for name, value in logs.items() if name not in _CHECK_METRICS}

    def make_train_function(self, force: bool = False) -> Callable:
        """Keras' train function, plus the subset checks that XLA would drop.

        With `jit_compile` on, XLA compiles TensorFlow's assertions to
        nothing: the step counts bad subsets instead, and this raises
        `tf.errors.InvalidArgumentError` as soon as a step returns with any.
        """
        if self.train_function is not None and not force:
            return self.train_function
        super().make_train_function(force=True)
        step = self.train_function
        if not self.jit_compile:
            return step

        def train_function(iterator):
            logs = step(iterator)
            self._raise_on_invalid_batches()
            return logs

        self.train_function = train_function
        return train_function

    def _raise_on_invalid_batches(self) -> None:
        bad_subsets = float(self.invalid_label_subsets.result())
        bad_sizes = float(self.invalid_subset_size_steps.result())
        if bad_subsets or bad_sizes:
            for counter in (self.invalid_label_subsets, self.invalid_subset_size_steps):
                counter.reset_state()
            raise tf.errors.InvalidArgumentError(
                None,
                None,
                f"Invalid training batches: {bad_sizes:.0f} step(s) with subsets of another size "
                f"than subset_size={self.subset_size}, {bad_subsets:.0f} subset(s) whose labels "
                f"differ inside the subset or lie outside [0, {self.num_classes}).",
            )

    def _subset_weights(self, alpha, sample_weight):
        """Per-subset weights of the hallucinated loss (`sample_weight` times α's)."""
        if self.subset_loss_weights is None:
            return sample_weight
        weights = self._alpha_subset_weights(alpha)
        if sample_weight is not None:
            weights = weights * ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
        return weights

    def _alpha_subset_weights(self, alpha):
        # Eq. 3 divides by Σα, so a subset whose members all look mislabelled
        # still yields a full-weight feature; its α scale says how much to trust it.
        alpha = ops.stop_gradient(ops.cast(alpha, "float32"))
        reduce = ops.max if self.subset_loss_weights == "max_alpha" else ops.mean
        weights = reduce(alpha, axis=1)
        return weights * self._loss_weight_scale(weights)

    def _loss_weight_scale(self, weights):
        """`1 / max(global batch mean of weights, MIN_MEAN_WEIGHT)` under `"batch"`, else 1."""
        if self.loss_weight_normalization is None:
            return 1.0
        weights = ops.stop_gradient(ops.cast(weights, "float32"))
        return 1.0 / ops.maximum(global_mean(weights), MIN_MEAN_WEIGHT)

    def _member_targets(self, labels, alpha, member_logits, sample_weight, normalize=True):
        """Flattened `(labels, probabilities, weights)` of the K·N members.

        Weights are `N·α_i / Σα` when `normalize`: normalising within the
        subset keeps the subset's total weight at N, so a loss that can move
        α cannot shrink by lowering every α at once. Otherwise they are α.
        """
        alpha = ops.cast(alpha, "float32")
        if not normalize:
            return self._flat_members(labels, alpha, member_logits, sample_weight)
        total = ops.sum(alpha, axis=1, keepdims=True)
        # A subset whose α all underflow to 0 (floor 0) falls back to equal
        # weights instead of 0/0, as the MetaCleaner layer does.
        alive = total > 0
        alpha = ops.where(alive, alpha, ops.ones_like(alpha))
        total = ops.where(alive, total, float(self.subset_size))
        weights = self.subset_size * alpha / total
        return self._flat_members(labels, weights, member_logits, sample_weight)

    def _flat_members(self, labels, weights, member_logits, sample_weight):
        member_labels = ops.repeat(labels[:, None], self.subset_size, axis=1)
        return (
            ops.reshape(member_labels, (-1,)),
            ops.reshape(self.probabilities(member_logits), (-1, self.num_classes)),
            self._flat_member_weights(weights, sample_weight),
        )

    @staticmethod
    def _flat_member_weights(weights, sample_weight):
        """Per-member weights `[K, N]` times the subsets' sample weights `[K]`, flattened."""
        if sample_weight is not None:
            weights = weights * ops.reshape(ops.cast(sample_weight, "float32"), (-1, 1))
        return ops.reshape(weights, (-1,))

    def _reweighted_loss(self, x, labels, alpha, member_logits, sample_weight):
        """Table 3 (I): each member's own loss, weighted by its α."""
        y, y_pred, weights = self._member_targets(labels, alpha, member_logits, sample_weight)
        return self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=weights, training=True)

    #: Weight each member of the auxiliary loss by α itself (on clean data,
    #: where α ≈ 1, that loss is plain training), not by `N·α_i / Σα`.
    _normalize_member_weights = False

    def _member_loss(self, labels, alpha, member_logits, sample_weight):
        """The auxiliary member loss of `member_loss_weight` (α gradient stopped by the caller)."""
        y, y_pred, weights = self._member_targets(
            labels, alpha, member_logits, sample_weight, normalize=self._normalize_member_weights
        )
        # A keras Loss object divides by the replica count as compute_loss
        # does, without adding the regularisation losses a second time.
        loss = self._member_loss_fn(y, y_pred, sample_weight=weights)
        if self.bootstrap_after_epochs is not None:
            # Two sparse cross-entropies, not one soft target α·label + (1 - α)·prediction:
            # Keras' categorical cross-entropy on softmax outputs backpropagates `p - t`,
            # the loss's gradient only where t sums to 1.
            predicted = ops.argmax(ops.stop_gradient(y_pred), axis=-1)
            distrust = self._flat_member_weights(1.0 - ops.cast(alpha, "float32"), sample_weight)
            bootstrap = self._member_loss_fn(predicted, y_pred, sample_weight=distrust)
            loss = loss + ops.cast(self.bootstrap_weight, "float32") * bootstrap
        # Both terms scale alike: each member keeps the balance α : 1 - α between its
        # label and the prediction (scaling the label term alone memorised pair flips).
        return loss * self._loss_weight_scale(alpha)

    def fit(self, *args: Any, **kwargs: Any) -> Any:
        """`keras.Model.fit`, with the switch of `bootstrap_after_epochs` added to the callbacks."""
        if self.bootstrap_after_epochs is not None:
            callbacks = kwargs.get("callbacks")
            if isinstance(callbacks, keras.callbacks.CallbackList):
                callbacks = list(callbacks.callbacks)
            callbacks = list(callbacks or [])
            if not any(isinstance(c, BootstrapSwitch) for c in callbacks):
                callbacks.append(BootstrapSwitch())
            kwargs["callbacks"] = callbacks
        return super().fit(*args, **kwargs)

    def _update_alpha_metrics(self, alpha):
        alpha = ops.cast(alpha, "float32")
        self.alpha_mean.update_state(ops.mean(alpha))
        self.alpha_std.update_state(ops.std(alpha))
        at_floor = ops.cast(alpha <= self.cleaner.alpha_min + 1e-3, "float32")
        self.alpha_floor.update_state(ops.mean(at_floor))

    def test_step(self, data):
        logs = super().test_step(data)
        # α is a training statistic; test batches never touch the cleaner.
        return {
            name: value
            for name, value in logs.items()
            if not name.startswith("alpha_") and name not in _CHECK_METRICS
        }

    # --------------------------------------------------------------- inference
    def inference_model(self, name: str | None = None) -> keras.Model:
        """The plain classifier, cleaner removed (section 3.3).

        Args:
            name: model name; defaults to `"<this model's name>_classifier"`.

        Returns:
            A functional `keras.Model`, images `[B, H, W, C]` (raw pixels) ->
            probabilities `[B, num_classes]`, sharing this model's weights.

        Example:

        >>> import keras_metacleaner as kmc
        >>> m = kmc.MetaCleanerModel(kmc.models.small_cnn(), num_classes=10, subset_size=2)
        >>> [layer.name for layer in m.inference_model().layers][1:]
        ['small_cnn', 'classifier', 'probabilities']
        """
        images = keras.Input(self.image_shape, name="images")
        outputs = self.probabilities(self.classifier(self.backbone(images)))
        return keras.Model(images, outputs, name=name or f"{self.name}_classifier")

    def predict_sets(
        self,
        x_sets: np.ndarray,
        labels: np.ndarray | None = None,
        batch_size: int = 32,
        return_weights: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Classifies noisy-labelled sets with the cleaner (end of section 3.3).

        Args:
            x_sets: `[K, N, H, W, C]` array: K sets of N images.
            labels: optional `[K]` noisy labels of the sets; weightings that
                score members against the label use them (without them, the
                set's most likely class under the plain mean).
            batch_size: sets per forward pass.
            return_weights: also return α `[K, N]`.

        Returns:
            Probabilities `[K, num_classes]` (NumPy), and α when asked.

        Example:

        >>> import numpy as np, keras_metacleaner as kmc
        >>> m = kmc.MetaCleanerModel(kmc.models.small_cnn(), num_classes=10, subset_size=2)
        >>> m.predict_sets(np.zeros((3, 2, 28, 28, 1), "float32")).shape
        (3, 10)
        """
        x_sets = np.asarray(x_sets)
        self._check_images(x_sets, 5, "x_sets")
        if labels is not None:
            labels = np.asarray(labels).astype("int32").reshape(-1)
            if labels.shape[0] != x_sets.shape[0]:
                raise ValueError(f"{labels.shape[0]} labels given for {x_sets.shape[0]} sets.")
            if labels.min(initial=0) < 0 or labels.max(initial=0) >= self.num_classes:
                raise ValueError(f"labels must be in [0, {self.num_classes}).")
        probabilities: list[np.ndarray] = []
        alphas: list[np.ndarray] = []
        for start in range(0, len(x_sets), batch_size):
            chunk = ops.convert_to_tensor(x_sets[start : start + batch_size], "float32")
            chunk_labels = None if labels is None else labels[start : start + batch_size]
            p, a, _ = self._forward_subsets(chunk, chunk_labels, training=False)
            probabilities.append(ops.convert_to_numpy(p))
            alphas.append(ops.convert_to_numpy(a))
        result = np.concatenate(probabilities) if probabilities else np.zeros((0, self.num_classes))
        if return_weights:
            alpha = np.concatenate(alphas) if alphas else np.zeros((0, self.subset_size))
            return result, alpha
        return result

    # ----------------------------------------------------------- serialization
    def get_config(self) -> dict:
        return {
            "name": self.name,
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "num_classes": self.num_classes,
            "subset_size": self.subset_size,
            "weighting": keras.saving.serialize_keras_object(self.weighting),
            "hidden_units": self.cleaner.hidden_units,
            "mode": self.mode,
            "shuffle_subsets": self.shuffle_subsets,
            "seed": self.seed,
            "member_loss_weight": self.member_loss_weight,
            "subset_loss_weights": self.subset_loss_weights,
            "bootstrap_after_epochs": self.bootstrap_after_epochs,
            "loss_weight_normalization": self.loss_weight_normalization,
        }

    @classmethod
    def from_config(cls, config: dict) -> MetaCleanerModel:
        # Deep copy: deserializing a Functional backbone pops keys from its
        # nested config, which would empty the caller's dict.
        config = copy.deepcopy(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        config["weighting"] = keras.saving.deserialize_keras_object(config["weighting"])
        # Files saved before the normalisation experiments left this class.
        normalize = {}
        if cls is MetaCleanerModel:
            normalize = {
                key: bool(config.pop(key))
                for key in ("normalize_member_weights", "normalize_subset_weights")
                if key in config
            }
        # Files saved before bootstrapping existed never bootstrapped.
        config.setdefault("bootstrap_after_epochs", None)
        # ... nor normalised their loss weights over the batch.
        config.setdefault("loss_weight_normalization", None)
        if config.get("mode") == "loss_reweight":
            # Stored then, never read in this mode.
            config["member_loss_weight"], config["subset_loss_weights"] = 0.0, None
        if cls is MetaCleanerModel and any(normalize.values()):
            from keras_metacleaner.experimental.normalized import NormalizedLossMetaCleanerModel

            return NormalizedLossMetaCleanerModel(**config, **normalize)
        return cls(**config)


class BootstrapSwitch(keras.callbacks.Callback):
    """Switches a model's bootstrapping on at its `bootstrap_after_epochs`.

    `MetaCleanerModel.fit` adds it; pass one yourself only to see it in the list.
    At the start of every epoch it sets the model's `bootstrap_weight` to 1.0 from
    epoch `bootstrap_after_epochs` on, else 0.0, so a resumed `fit` (BackupAndRestore,
    `initial_epoch`) is in the state of the epoch it resumes at.
    """

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        after = getattr(self.model, "bootstrap_after_epochs", None)
        if after is not None:
            self.model.bootstrap_weight.assign(1.0 if epoch >= after else 0.0)
