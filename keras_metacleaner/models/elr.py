"""Early-learning regularization (Liu et al., NeurIPS 2020)."""

from __future__ import annotations

import copy
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_metacleaner.layers.weighting import PACKAGE, _is_int
from keras_metacleaner.models.metacleaner_model import unscale_loss_for_distribution

#: ELR clips probabilities to [CLIP, 1 - CLIP] (as its reference code does)
#: so that log(1 - <t, p>) stays finite.
CLIP = 1e-4


class _ELRRegularizer(keras.losses.Loss):
    """log(1 - <t, p>) per example; a Keras Loss so that Keras reduces and scales it."""

    def __init__(self) -> None:
        super().__init__(name="elr_regularizer")

    def call(self, targets, probabilities):
        return ops.log(1.0 - ops.sum(targets * probabilities, axis=-1))


def _all_gather(value):
    """`value` of every replica, concatenated (itself outside a strategy)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_gather(value, axis=0)


@keras.saving.register_keras_serializable(package=PACKAGE)
class ELRModel(keras.Model):
    """A classifier trained with early-learning regularization (ELR).

    Early in training a network fits the clean majority before it memorises
    the wrong labels. ELR keeps, for every training example, a running
    average t_i of the network's own (clipped, normalised) predictions,
    `t_i ← β·t_i + (1 - β)·p_i`, and adds `λ·log(1 - <t_i, p_i>)` to the
    cross-entropy: the term falls as p_i agrees with the early-learning
    target, which pulls the prediction of a mislabelled example towards the
    class the network learned for it early instead of its wrong label.

    Training batches carry each example's index into the targets:
    `({"images": x [B, H, W, C], "index": i [B] int}, y [B])`. Evaluation and
    prediction take images alone (or the same dict). Compile with the
    cross-entropy, `loss="sparse_categorical_crossentropy"`: this model adds
    the regulariser to the compiled loss.

    Under `tf.distribute`, each replica updates its own examples' targets and
    the rows are all-gathered so that every copy of the targets holds the
    whole batch's update.

    Args:
        classifier: `keras.Model`, images `[B, H, W, C]` -> probabilities
            `[B, num_classes]` (for example `plain_classifier(backbone, C)`).
        num_examples: int >= 1. Size of the training set; indices lie in
            `[0, num_examples)`.
        num_classes: int >= 2.
        lambda_: float >= 0. λ, the weight of the regulariser (3 in the paper
            for CIFAR-10); 0 is plain cross-entropy.
        beta: float in [0, 1). β, the momentum of the targets (0.7).
        **kwargs: passed to `keras.Model`.

    Example:

    >>> import keras_metacleaner as kmc
    >>> classifier = kmc.models.plain_classifier(kmc.models.small_cnn(), 10)
    >>> model = ELRModel(classifier, num_examples=100, num_classes=10)
    >>> tuple(model.targets.shape)
    (100, 10)
    """

    def __init__(
        self,
        classifier: keras.Model,
        num_examples: int,
        num_classes: int,
        lambda_: float = 3.0,
        beta: float = 0.7,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not _is_int(num_examples) or num_examples < 1:
            raise ValueError(f"`num_examples` must be an integer >= 1, got {num_examples!r}.")
        if not _is_int(num_classes) or num_classes < 2:
            raise ValueError(f"`num_classes` must be an integer >= 2, got {num_classes!r}.")
        if not np.isfinite(lambda_) or lambda_ < 0:
            raise ValueError(f"`lambda_` must be a finite number >= 0, got {lambda_!r}.")
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"`beta` must be in [0, 1), got {beta!r}.")
        if tuple(classifier.output_shape[1:]) != (num_classes,):
            raise ValueError(
                f"`classifier` must output probabilities [B, {num_classes}], "
                f"its output shape is {classifier.output_shape}."
            )
        self.classifier = classifier
        self.num_examples = int(num_examples)
        self.num_classes = int(num_classes)
        self.lambda_ = float(lambda_)
        self.beta = float(beta)
        # Every replica computes the same full update: keep the first's.
        self.targets = self.add_weight(
            shape=(self.num_examples, self.num_classes),
            initializer="zeros",
            trainable=False,
            aggregation="only_first_replica",
            name="targets",
        )
        self._regularizer = _ELRRegularizer()
        self.built = True

    @staticmethod
    def _images(inputs):
        return inputs["images"] if isinstance(inputs, dict) else inputs

    def call(self, inputs, training=None):
        return self.classifier(self._images(inputs), training=training)

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if not isinstance(x, dict) or "index" not in x or "images" not in x:
            raise ValueError(
                'ELRModel trains on ({"images": x, "index": i}, y): each example\'s index '
                f"into the targets; got inputs of type {type(x).__name__}."
            )
        index = ops.cast(ops.reshape(x["index"], (-1,)), "int32")
        check = tf.debugging.assert_less(
            index, self.num_examples, message=f"index must lie in [0, {self.num_examples}); got"
        )
        with tf.control_dependencies([check, tf.debugging.assert_non_negative(index)]):
            index = tf.identity(index)
        with tf.GradientTape() as tape:
            probabilities = self.classifier(x["images"], training=True)
            loss = self.compute_loss(
                x=x, y=y, y_pred=probabilities, sample_weight=sample_weight, training=True
            )
            clipped = ops.clip(ops.cast(probabilities, "float32"), CLIP, 1.0 - CLIP)
            normalised = ops.stop_gradient(clipped / ops.sum(clipped, axis=-1, keepdims=True))
            targets = (
                self.beta * ops.take(self.targets, index, axis=0) + (1.0 - self.beta) * normalised
            )
            if self.lambda_:
                loss = loss + self.lambda_ * self._regularizer(
                    targets, clipped, sample_weight=sample_weight
                )
            scaled_loss = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled_loss, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        self.targets.assign(
            tf.tensor_scatter_nd_update(
                self.targets, _all_gather(index)[:, None], _all_gather(targets)
            )
        )
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(
                    unscale_loss_for_distribution(loss), sample_weight=ops.shape(index)[0]
                )
        return self.compute_metrics(x, y, probabilities, sample_weight=sample_weight)

    def inference_model(self) -> keras.Model:
        """The classifier: images -> probabilities, sharing this model's weights.

        Returns:
            The `classifier` this model trains (functional, exportable).
        """
        return self.classifier

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "classifier": keras.saving.serialize_keras_object(self.classifier),
            "num_examples": self.num_examples,
            "num_classes": self.num_classes,
            "lambda_": self.lambda_,
            "beta": self.beta,
        }

    @classmethod
    def from_config(cls, config: dict) -> ELRModel:
        config = copy.deepcopy(config)
        config["classifier"] = keras.saving.deserialize_keras_object(config["classifier"])
        return cls(**config)
