"""MetaCleanerModel: backbone -> MetaCleaner -> classifier, trained on class subsets."""

from __future__ import annotations

import copy

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from keras_metacleaner.layers.global_batch import global_mean
from keras_metacleaner.layers.metacleaner import MetaCleaner
from keras_metacleaner.layers.weighting import DEFAULT_WEIGHTING, PACKAGE, Weighting

MODES = ("hallucinate", "loss_reweight")
#: How the hallucinated loss weighs each subset: equally (None, the paper),
#: or by the largest or the mean α of its members.
SUBSET_LOSS_WEIGHTS = (None, "max_alpha", "mean_alpha")
#: The subset weighting that measured best (docs/results.md).
DEFAULT_SUBSET_LOSS_WEIGHTS = "max_alpha"
#: The weight of the α-weighted per-image loss that measured best with the
#: default weighting (docs/results.md); 0 is the paper's pure hallucination.
DEFAULT_MEMBER_LOSS_WEIGHT = 1.0


def unscale_loss_for_distribution(loss):
    """Undoes the 1/replicas that Keras' losses apply, for the `loss` metric."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss if replicas == 1 else loss * ops.cast(replicas, loss.dtype)


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

    Args:
        backbone: `keras.Model` from images `[B, H, W, C]` (raw pixels, its
            own preprocessing inside) to features `[B, D]`.
        num_classes: int. Number of classes.
        subset_size: int >= 1. N.
        weighting: a Noisy Weighting name (see
            `keras_metacleaner.layers.WEIGHTINGS`) or `Weighting` layer.
        hidden_units: int. Hidden width of the weighting.
        mode: `"hallucinate"` (Eq. 3, the paper's method) or
            `"loss_reweight"` (Table 3, I: each image is classified on its
            own and its loss weighted by `N·α_i / Σα`; normalising within the
            subset stops the loss from simply driving every α to its floor).
        shuffle_subsets: bool. Shuffle the order inside each subset every step.
        seed: int or None. Seed of the in-subset shuffling.
        member_loss_weight: float >= 0. In `"hallucinate"` mode, adds this
            times the cross-entropy of each member classified on its own,
            weighted by its α (gradient stopped at α). 0 is the paper's
            method; the default 1.0 measured best with the default weighting
            (docs/results.md).
        normalize_member_weights: bool. Weight each member's loss of
            `member_loss_weight` by `α_i` itself (False, the default: the
            per-image loss shrinks with the share of members the weighting
            turns down, and on clean data, where α ≈ 1, it is plain
            training) or by `N·α_i / Σα` (True: every subset carries the same
            total weight whatever its α).
        subset_loss_weights: `None`, `"max_alpha"` (default) or
            `"mean_alpha"`. In `"hallucinate"` mode, weighs each subset's
            loss equally (None, the paper) or by the largest / the mean α of
            its members (gradient stopped): Eq. 3 divides by Σα, which hides
            that every member of a subset looks mislabelled; this weight does
            not. With the default weighting it keeps the final epoch within
            a point of the best at 60% noise (docs/results.md).
        normalize_subset_weights: bool. Divide the subset weights by their
            mean over the (global) batch, so they move weight between subsets
            without shrinking the hallucinated loss as a whole.
        **kwargs: passed to `keras.Model`.

    Returns:
        Probabilities `[B, num_classes]` for images, `[K, num_classes]` for
        subsets `[K, N, H, W, C]`.

    Example:

    >>> import keras_metacleaner as kmc
    >>> backbone = kmc.models.small_cnn((28, 28, 1))
    >>> model = kmc.MetaCleanerModel(backbone, num_classes=10, subset_size=4)
    >>> tuple(model(keras.ops.zeros((2, 28, 28, 1))).shape)
    (2, 10)
    """

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
        member_loss_weight: float = DEFAULT_MEMBER_LOSS_WEIGHT,
        normalize_member_weights: bool = False,
        subset_loss_weights: str | None = DEFAULT_SUBSET_LOSS_WEIGHTS,
        normalize_subset_weights: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"`num_classes` must be an integer >= 2, got {num_classes!r}.")
        if mode not in MODES:
            raise ValueError(f"`mode` must be one of {MODES}, got {mode!r}.")
        if subset_loss_weights not in SUBSET_LOSS_WEIGHTS:
            raise ValueError(
                f"`subset_loss_weights` must be one of {SUBSET_LOSS_WEIGHTS}, "
                f"got {subset_loss_weights!r}."
            )
        if member_loss_weight < 0:
            raise ValueError(f"`member_loss_weight` must be >= 0, got {member_loss_weight!r}.")
        if len(backbone.output_shape) != 2:
            raise ValueError(
                "`backbone` must output a feature vector [B, D] (add global pooling); its output "
                f"shape is {backbone.output_shape}."
            )
        self.backbone = backbone
        self.num_classes = num_classes
        self.subset_size = subset_size
        self.mode = mode
        self.shuffle_subsets = bool(shuffle_subsets)
        self.seed = seed
        self.cleaner = MetaCleaner(
            subset_size, weighting, hidden_units, return_weights=True, name="metacleaner"
        )
        self.classifier = layers.Dense(num_classes, name="classifier")
        # float32 output under mixed precision: softmax and the loss stay stable.
        self.probabilities = layers.Activation("softmax", dtype="float32", name="probabilities")
        self.member_loss_weight = float(member_loss_weight)
        self.normalize_member_weights = bool(normalize_member_weights)
        self.subset_loss_weights = subset_loss_weights
        self.normalize_subset_weights = bool(normalize_subset_weights)
        self._member_loss_fn = keras.losses.SparseCategoricalCrossentropy()
        self.seed_generator = keras.random.SeedGenerator(seed, name="subset_shuffle")
        self.alpha_mean = keras.metrics.Mean(name="alpha_mean")
        self.alpha_std = keras.metrics.Mean(name="alpha_std")
        self.alpha_floor = keras.metrics.Mean(name="alpha_floor")

        feature_dim = backbone.output_shape[-1]
        self.cleaner.build((None, subset_size, feature_dim))
        self.classifier.build((None, feature_dim))
        self.probabilities.build((None, num_classes))
        self.built = True

    @property
    def image_shape(self) -> tuple:
        """`(H, W, C)` of the images the backbone takes."""
        return tuple(self.backbone.input_shape[1:])

    @property
    def weighting(self) -> Weighting:
        return self.cleaner.weighting

    # ------------------------------------------------------------------ checks
    def _check_images(self, x, rank: int, what: str):
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
        """Validates subset labels and returns them as int32 `[K]`."""
        if y is None:
            raise ValueError("MetaCleanerModel needs labels y of shape [K] or [K, N] to train.")
        y = ops.convert_to_tensor(y)
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
        if len(y.shape) == 2:
            checks.append(
                tf.debugging.assert_equal(
                    y, y[:, :1], message="All labels inside one subset must be equal; got"
                )
            )
            y = y[:, 0]
        with tf.control_dependencies(checks):
            return tf.identity(y)

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
        labels = self._subset_labels(x, y)
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
            scaled_loss = self.optimizer.scale_loss(loss)

        gradients = tape.gradient(scaled_loss, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        self._update_alpha_metrics(alpha)
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(
                    unscale_loss_for_distribution(loss), sample_weight=ops.shape(labels)[0]
                )
        return self.compute_metrics(x, labels, probabilities, sample_weight=sample_weight)

    def _subset_weights(self, alpha, sample_weight):
        """Per-subset weights of the hallucinated loss (`sample_weight` times α's)."""
        if self.subset_loss_weights is None:
            return sample_weight
        # Eq. 3 divides by Σα, so a subset whose members all look mislabelled
        # still yields a full-weight feature; its α scale says how much to trust it.
        alpha = ops.stop_gradient(ops.cast(alpha, "float32"))
        reduce = ops.max if self.subset_loss_weights == "max_alpha" else ops.mean
        weights = reduce(alpha, axis=1)
        if self.normalize_subset_weights:
            # Redistribute between subsets without shrinking the loss as a whole.
            weights = weights / ops.maximum(global_mean(weights), 1e-12)
        if sample_weight is not None:
            weights = weights * ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
        return weights

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
        if sample_weight is not None:
            weights = weights * ops.reshape(ops.cast(sample_weight, "float32"), (-1, 1))
        member_labels = ops.repeat(labels[:, None], self.subset_size, axis=1)
        return (
            ops.reshape(member_labels, (-1,)),
            ops.reshape(self.probabilities(member_logits), (-1, self.num_classes)),
            ops.reshape(weights, (-1,)),
        )

    def _reweighted_loss(self, x, labels, alpha, member_logits, sample_weight):
        """Table 3 (I): each member's own loss, weighted by its α."""
        y, y_pred, weights = self._member_targets(labels, alpha, member_logits, sample_weight)
        return self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=weights, training=True)

    def _member_loss(self, labels, alpha, member_logits, sample_weight):
        """The auxiliary member loss of `member_loss_weight` (α gradient stopped by the caller)."""
        y, y_pred, weights = self._member_targets(
            labels, alpha, member_logits, sample_weight, normalize=self.normalize_member_weights
        )
        # A keras Loss object divides by the replica count as compute_loss
        # does, without adding the regularisation losses a second time.
        return self._member_loss_fn(y, y_pred, sample_weight=weights)

    def _update_alpha_metrics(self, alpha):
        alpha = ops.cast(alpha, "float32")
        self.alpha_mean.update_state(ops.mean(alpha))
        self.alpha_std.update_state(ops.std(alpha))
        at_floor = ops.cast(alpha <= self.cleaner.alpha_min + 1e-3, "float32")
        self.alpha_floor.update_state(ops.mean(at_floor))

    def test_step(self, data):
        logs = super().test_step(data)
        # α is a training statistic; test batches never touch the cleaner.
        return {name: value for name, value in logs.items() if not name.startswith("alpha_")}

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

    def predict_sets(self, x_sets, labels=None, batch_size: int = 32, return_weights: bool = False):
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
        probabilities, alphas = [], []
        for start in range(0, len(x_sets), batch_size):
            chunk = ops.convert_to_tensor(x_sets[start : start + batch_size], "float32")
            chunk_labels = None if labels is None else labels[start : start + batch_size]
            p, a, _ = self._forward_subsets(chunk, chunk_labels, training=False)
            probabilities.append(ops.convert_to_numpy(p))
            alphas.append(ops.convert_to_numpy(a))
        probabilities = (
            np.concatenate(probabilities) if probabilities else np.zeros((0, self.num_classes))
        )
        if return_weights:
            alpha = np.concatenate(alphas) if alphas else np.zeros((0, self.subset_size))
            return probabilities, alpha
        return probabilities

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
            "normalize_member_weights": self.normalize_member_weights,
            "subset_loss_weights": self.subset_loss_weights,
            "normalize_subset_weights": self.normalize_subset_weights,
        }

    @classmethod
    def from_config(cls, config):
        # Deep copy: deserializing a Functional backbone pops keys from its
        # nested config, which would empty the caller's dict.
        config = copy.deepcopy(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        config["weighting"] = keras.saving.deserialize_keras_object(config["weighting"])
        return cls(**config)
