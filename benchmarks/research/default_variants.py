#!/usr/bin/env python
"""Variants of the default method tried against the best peer (issue 14), one run per call.

Each call trains one variant of a frozen version of the default (`VARIANTS` names which:
the default when the variant was measured) through `kmc.training.run` with the
settings of `benchmarks/accuracy.py` (Fashion-MNIST, first 10k, 10% noisy validation
split, small_cnn, SGD 0.02, batch 128, 30 epochs, `--select_on=noisy_val`) and appends
one record (final / picked / oracle accuracy and the test curve) to `--out`. The
variant replaces the model that version's method builds (and, for `sce_all`, its
compiled loss); everything else is the method's. These are research code, kept so that
every number of docs/results.md's "Research towards beating the best peer" can be
rerun. Two became library options once they measured better: `bootstrap_from5` is
`bootstrap_after_epochs` (v2), `normalised_bootstrap` is `loss_weight_normalization`
(v3); the rest are not in the library.

    python benchmarks/research/default_variants.py --variant=mixup \\
        --noise=symmetric:0.4 --schedule=constant --seed=0 --out=/tmp/variants.jsonl

Variants:
  default        the library's `metacleaner`, unchanged.
  bootstrap      per-image targets α·label + (1 - α)·onehot(prediction) (hard
                 bootstrapping, Reed et al. 2015, with the cleaner's α as the trust).
  bootstrap_t09  the same, the pseudo-label used only where the prediction has
                 probability >= 0.9 (FixMatch's gate): two sparse cross-entropies.
  bootstrap_from5
                 `bootstrap` switched on at the sixth epoch (epoch index 5), once the
                 classifier is right often enough for its predictions to teach.
  bootstrap_plateau
                 `bootstrap` switched on once the noisy-validation accuracy has not
                 risen for 2 epochs (a rule a user without clean labels can run).
  sce_members    the per-image loss is SCE (0.1, 1.0, A -4) instead of CE, weighted by α.
  sce_all        SCE for the hallucinated loss too.
  ema_teacher    α read from a slow copy of the network (weights averaged over the
                 steps, decay 0.99), so a label the network starts to memorise does not
                 raise its own α; one more forward pass of the members.
  elr_teacher    the default (v2) plus ELR's regulariser on every member,
                 λ·log(1 - <t, p>) with λ = 3, the target t read from a weight-averaged
                 copy of the network (decay 0.99 per step; ELR+'s mean teacher) instead of
                 a per-example running average, which would need each member's index.
  elr_teacher_distrust
                 the same regulariser weighted by each member's 1 - α (the members
                 the cleaner distrusts), λ = 3.
  elr_teacher_late
                 `elr_teacher` with the regulariser switched on with the bootstrapping
                 (epoch index 5): at the start the teacher is a copy of the network, and
                 pulling a prediction towards itself rewards any confident answer (the
                 first `elr_teacher` run collapsed to 52% within two epochs).
  elr_members    the default (v2) plus ELR's regulariser on every member with ELR's own
                 target, a per-image running average of the predictions (β 0.7, λ 3).
                 Members carry no index: each image's row is found by an exact integer
                 hash of its pixels (2^20 rows; research only, and only without
                 augmentation, where an image is the same every epoch).
  elr_members_late
                 `elr_members` with the regulariser switched on with the bootstrapping
                 (epoch index 5); the targets average the predictions from the start.
  normalised_members
                 the default (v2) with the members' label loss weighted by α_i / ᾱ
                 (ᾱ the batch's mean α, at least 0.05) instead of α_i: the self-normalised
                 estimate Σα_i·ℓ_i / Σα_i of the clean members' loss. Weighting by α alone
                 scales the step on the clean members by the clean share, five times too
                 small at 80% noise (α's mean 0.22 there).
  normalised_all `normalised_members`, and the subsets' hallucinated loss weights
                 max α_k / mean_k(max α) as well.
  normalised_warmup
                 `normalised_all` during the 5 warm-up epochs only, the default (v2)
                 after: v3 under pair flips learns fast and then memorises.
  normalised_bootstrap
                 `normalised_all` with the bootstrap term divided by ᾱ as well, so each
                 member's label and prediction keep v2's balance α : 1 - α.
  no_subset_loss the default (v3 since session 6) without the hallucinated loss: only the
                 members' α-weighted loss and bootstrapping (an ablation: what the
                 subset-mean loss, the paper's idea, adds or costs).
  mixup          the per-image loss on mixup of the batch's members (λ ~ Beta(1, 1),
                 max(λ, 1 - λ)), each side weighted by its α; a second backbone pass.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
sys.path.insert(0, ROOT)

# Each variant with the frozen version it modifies, the default when it was measured (its
# records' configurations say which): built from a moving `metacleaner`, a variant of v1
# would run on top of v3's bootstrapping and normalisation today and not reproduce.
V1, V2, V3 = "metacleaner_v1", "metacleaner_v2", "metacleaner_v3"
VARIANTS = {
    "default": "metacleaner",  # the library's default as it is at this commit
    "ema_teacher": V1,
    "bootstrap": V1,
    "bootstrap_t09": V1,
    "bootstrap_from5": V1,
    "bootstrap_plateau": V1,
    "sce_members": V1,
    "sce_all": V1,
    "mixup": V1,
    "elr_teacher": V2,
    "elr_teacher_distrust": V2,
    "elr_teacher_late": V2,
    "elr_members": V2,
    "elr_members_late": V2,
    "normalised_members": V2,
    "normalised_all": V2,
    "normalised_warmup": V2,
    "normalised_bootstrap": V2,
    "no_subset_loss": V3,
}


def variant_classes():
    """`({variant: (model class, compiled-loss factory or None)}, {variant: callback factory})`.

    Imports TensorFlow.
    """
    import keras
    import numpy as np
    import tensorflow as tf
    from keras import ops

    from keras_metacleaner import losses
    from keras_metacleaner.models import MetaCleanerModel, elr

    def sce():
        return losses.SymmetricCrossEntropy(alpha=0.1, beta=1.0, log_clip=-4.0)

    class Bootstrap(MetaCleanerModel):
        threshold = None

        def _member_loss(self, labels, alpha, member_logits, sample_weight):
            c = self.num_classes
            probs = ops.reshape(self.probabilities(member_logits), (-1, c))
            a = ops.reshape(ops.cast(alpha, "float32"), (-1,))
            given = ops.reshape(ops.repeat(labels[:, None], self.subset_size, axis=1), (-1,))
            predicted = ops.stop_gradient(probs)
            gate = self._bootstrap_gate()
            if self.threshold is not None:
                gate = ops.cast(ops.max(predicted, axis=-1) >= self.threshold, "float32")
            # Two sparse cross-entropies, not one soft target: Keras' categorical
            # cross-entropy on softmax outputs backpropagates `p - t`, which is the
            # gradient only when t sums to 1 (a first version with α·label as the
            # target diverged).
            ce = keras.losses.SparseCategoricalCrossentropy()
            return ce(given, probs, sample_weight=a) + ce(
                ops.argmax(predicted, axis=-1), probs, sample_weight=(1.0 - a) * gate
            )

        def _bootstrap_gate(self):
            return 1.0

    class BootstrapT09(Bootstrap):
        threshold = 0.9

    class BootstrapLate(Bootstrap):
        """Bootstrapping gated by a variable that `BootstrapSwitch` sets once."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.bootstrap_on = keras.Variable(0.0, trainable=False, name="bootstrap_on")

        def _bootstrap_gate(self):
            return ops.convert_to_tensor(self.bootstrap_on)

    class BootstrapSwitch(keras.callbacks.Callback):
        """Turns bootstrapping on at `start_epoch`, or after `patience` epochs without a
        new best noisy-validation accuracy (the selection callback logs it before this)."""

        def __init__(self, start_epoch=None, patience=None):
            super().__init__()
            self.start_epoch, self.patience = start_epoch, patience
            self.best, self.waited = -1.0, 0

        def on_epoch_begin(self, epoch, logs=None):
            if self.start_epoch is not None and epoch >= self.start_epoch:
                self._switch_on(epoch)

        def on_epoch_end(self, epoch, logs=None):
            if self.patience is None:
                return
            score = (logs or {}).get("noisy_val_accuracy")
            if score is None:
                raise ValueError("bootstrap_plateau needs noisy_val_accuracy in the logs")
            if score > self.best:
                self.best, self.waited = score, 0
            else:
                self.waited += 1
                if self.waited >= self.patience:
                    self._switch_on(epoch + 1)

        def _switch_on(self, epoch):
            if float(self.model.bootstrap_on.numpy()) == 0.0:
                print(f"bootstrapping on from epoch {epoch}", flush=True)
                self.model.bootstrap_on.assign(1.0)

    class SCEMembers(MetaCleanerModel):
        def _member_loss(self, labels, alpha, member_logits, sample_weight):
            y, y_pred, weights = self._member_targets(
                labels, alpha, member_logits, sample_weight, normalize=False
            )
            return sce()(y, y_pred, sample_weight=weights)

    class Mixup(MetaCleanerModel):
        def train_step(self, data):
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            x = self._check_subset_size(x)
            labels, valid = self._subset_labels(x, y)
            if self.shuffle_subsets:
                x = self._shuffle_within_subsets(x)
            shape = tf.shape(x)
            flat = tf.reshape(x, tf.concat([[shape[0] * shape[1]], shape[2:]], 0))
            flat = tf.cast(flat, "float32")
            perm = tf.random.shuffle(tf.range(tf.shape(flat)[0]))
            g = tf.random.gamma([2], 1.0)
            lam = tf.maximum(g[0] / (g[0] + g[1]), g[1] / (g[0] + g[1]))
            mixed = lam * flat + (1.0 - lam) * tf.gather(flat, perm)
            with tf.GradientTape() as tape:
                probabilities, alpha, _ = self._forward_subsets(x, labels, training=True)
                loss = self.compute_loss(
                    x=x,
                    y=labels,
                    y_pred=probabilities,
                    sample_weight=self._subset_weights(alpha, sample_weight),
                    training=True,
                )
                a = ops.reshape(ops.stop_gradient(ops.cast(alpha, "float32")), (-1,))
                given = ops.reshape(ops.repeat(labels[:, None], self.subset_size, axis=1), (-1,))
                mixed_features = self.backbone(mixed, training=True)
                mixed_probs = self.probabilities(self.classifier(mixed_features))
                ce = keras.losses.SparseCategoricalCrossentropy()
                member = lam * ce(given, mixed_probs, sample_weight=a) + (1.0 - lam) * ce(
                    tf.gather(given, perm), mixed_probs, sample_weight=tf.gather(a, perm)
                )
                loss = loss + self.member_loss_weight * member
                scaled = self.optimizer.scale_loss(loss * valid)
            gradients = tape.gradient(scaled, self.trainable_variables)
            self.optimizer.apply(gradients, self.trainable_variables)
            self._update_alpha_metrics(alpha)
            for metric in self.metrics:
                if metric.name == "loss":
                    metric.update_state(loss, sample_weight=ops.shape(labels)[0])
            logs = self.compute_metrics(x, labels, probabilities, sample_weight=sample_weight)
            return {k: v for k, v in logs.items() if not k.startswith("invalid_")}

    class EmaTeacher(MetaCleanerModel):
        """α from a slow copy of the network (weights averaged over steps, decay 0.99)."""

        ema_decay = 0.99

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.teacher_backbone = keras.models.clone_model(self.backbone)
            self.teacher_backbone.set_weights(self.backbone.get_weights())
            self.teacher_backbone.trainable = False
            self.teacher_classifier = keras.layers.Dense(self.num_classes, name="teacher")
            self.teacher_classifier.build((None, self.backbone.output_shape[-1]))
            self.teacher_classifier.set_weights(self.classifier.get_weights())
            self.teacher_classifier.trainable = False

        def _pairs(self):
            return list(
                zip(
                    self.teacher_backbone.weights + self.teacher_classifier.weights,
                    self.backbone.weights + self.classifier.weights,
                )
            )

        def _forward_subsets(self, x, labels, training):
            features = self._subset_features(x, training)
            member_logits = self.classifier(features)
            shape = ops.shape(x)
            flat = ops.reshape(x, (shape[0] * shape[1], *self.image_shape))
            teacher = self.teacher_classifier(self.teacher_backbone(flat, training=False))
            teacher = ops.reshape(teacher, (shape[0], shape[1], self.num_classes))
            log_probs = ops.log_softmax(ops.cast(teacher, "float32"), axis=-1)
            if labels is None:
                labels = ops.argmax(ops.mean(ops.exp(log_probs), axis=1), axis=-1)
            class_scores = self.weighting.class_scores(log_probs, labels)
            clean, alpha = self.cleaner(features, class_scores)
            return self.probabilities(self.classifier(clean)), alpha, member_logits

        def train_step(self, data):
            logs = super().train_step(data)
            for slow, fast in self._pairs():
                slow.assign(self.ema_decay * slow + (1.0 - self.ema_decay) * fast)
            return logs

    def elr_clip(probs):
        """ELR's clipped probabilities (its reference code's 1e-4), in float32."""
        return ops.clip(ops.cast(probs, "float32"), elr.CLIP, 1.0 - elr.CLIP)

    def elr_normalise(clipped):
        """Clipped probabilities renormalised to sum to 1, as a target (no gradient)."""
        return ops.stop_gradient(clipped / ops.sum(clipped, axis=-1, keepdims=True))

    class ELRTerm:
        """Adds λ·log(1 - <t, p>) per member to the default's member loss.

        Subclasses give the targets t (`_elr_targets_for`) and, optionally, the
        members' weights (`_elr_weights`); `late` gates the term with the
        bootstrapping switch (on from the sixth epoch).
        """

        elr_lambda = 3.0
        late = False

        def _elr_targets_for(self, clipped):
            raise NotImplementedError

        def _elr_weights(self, alpha, sample_weight):
            return None

        def _member_loss(self, labels, alpha, member_logits, sample_weight):
            loss = super()._member_loss(labels, alpha, member_logits, sample_weight)
            probs = ops.reshape(self.probabilities(member_logits), (-1, self.num_classes))
            clipped = elr_clip(probs)
            targets = self._elr_targets_for(clipped)
            regulariser = elr._ELRRegularizer()(
                targets, clipped, sample_weight=self._elr_weights(alpha, sample_weight)
            )
            if self.late:
                regulariser = ops.cast(self.bootstrap_weight, "float32") * regulariser
            # The caller multiplies by member_loss_weight: divide it out, λ is ELR's.
            return loss + self.elr_lambda / self.member_loss_weight * regulariser

    class ELRTeacher(ELRTerm, EmaTeacher):
        """The default plus λ·log(1 - <t, p>) per member, t from the mean teacher."""

        weigh_by_distrust = False

        def _forward_subsets(self, x, labels, training):
            if training:
                shape = ops.shape(x)
                flat = ops.reshape(x, (shape[0] * shape[1], *self.image_shape))
                logits = self.teacher_classifier(self.teacher_backbone(flat, training=False))
                probs = ops.softmax(ops.cast(logits, "float32"), axis=-1)
                self._teacher_targets = elr_normalise(elr_clip(probs))
            return MetaCleanerModel._forward_subsets(self, x, labels, training)

        def _elr_targets_for(self, clipped):
            return self._teacher_targets

        def _elr_weights(self, alpha, sample_weight):
            if self.weigh_by_distrust:
                return self._flat_member_weights(1.0 - ops.cast(alpha, "float32"), sample_weight)
            if sample_weight is not None:
                return self._flat_member_weights(
                    ops.ones_like(ops.cast(alpha, "float32")), sample_weight
                )
            return None

    class ELRTeacherDistrust(ELRTeacher):
        weigh_by_distrust = True

    class ELRTeacherLate(ELRTeacher):
        late = True

    class ELRMembers(ELRTerm, MetaCleanerModel):
        """The default plus λ·log(1 - <t_i, p_i>) per member, t_i ELR's running average."""

        elr_beta, rows = 0.7, 2**20

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.elr_targets = self.add_weight(
                shape=(self.rows, self.num_classes),
                initializer="zeros",
                trainable=False,
                name="elr_targets",
            )
            size = int(np.prod(self.image_shape))
            self.hash_weights = np.random.default_rng(7).integers(1, 2**20, size, dtype=np.int64)

        def _forward_subsets(self, x, labels, training):
            if training:
                shape = ops.shape(x)
                flat = tf.reshape(tf.cast(x, "float32"), (shape[0] * shape[1], -1))
                bits = tf.cast(tf.bitcast(flat, tf.int32), tf.int64)
                key = tf.reduce_sum(bits * tf.constant(self.hash_weights)[None, :], axis=1)
                self._elr_rows = tf.math.floormod(key, self.rows)
            return super()._forward_subsets(x, labels, training)

        def _elr_targets_for(self, clipped):
            rows = self._elr_rows
            targets = self.elr_beta * tf.gather(self.elr_targets, rows) + (
                1.0 - self.elr_beta
            ) * elr_normalise(clipped)
            self.elr_targets.assign(
                tf.tensor_scatter_nd_update(self.elr_targets, rows[:, None], targets)
            )
            return targets

    class ELRMembersLate(ELRMembers):
        late = True

    min_mean_alpha = 0.05

    class NormalisedMembers(MetaCleanerModel):
        """v2 with α_i / ᾱ on the members' label loss (and on the subsets' if asked)."""

        normalise_subsets = False
        warmup_only = False
        normalise_bootstrap = False

        def _scale(self, weights):
            """1 / max(mean, 0.05); during the warm-up only when `warmup_only`."""
            scale = 1.0 / ops.maximum(ops.mean(weights), min_mean_alpha)
            if self.warmup_only:
                on = ops.cast(self.bootstrap_weight, "float32")
                scale = on + (1.0 - on) * scale
            return scale

        def _member_loss(self, labels, alpha, member_logits, sample_weight):
            a = ops.cast(alpha, "float32")
            scale = self._scale(a)
            y, y_pred, weights = self._member_targets(
                labels, a * scale, member_logits, sample_weight, normalize=False
            )
            loss = self._member_loss_fn(y, y_pred, sample_weight=weights)
            predicted = ops.argmax(ops.stop_gradient(y_pred), axis=-1)
            distrust = 1.0 - a
            if self.normalise_bootstrap:
                distrust = distrust * scale
            distrust = self._flat_member_weights(distrust, sample_weight)
            bootstrap = self._member_loss_fn(predicted, y_pred, sample_weight=distrust)
            return loss + ops.cast(self.bootstrap_weight, "float32") * bootstrap

        def _alpha_subset_weights(self, alpha):
            weights = super()._alpha_subset_weights(alpha)
            if not self.normalise_subsets:
                return weights
            return weights * self._scale(weights)

    class NormalisedAll(NormalisedMembers):
        normalise_subsets = True

    class NormalisedWarmup(NormalisedAll):
        warmup_only = True

    class NormalisedBootstrap(NormalisedAll):
        normalise_bootstrap = True

    class NoSubsetLoss(MetaCleanerModel):
        """The default without its hallucinated loss (every subset weighted 0)."""

        def _alpha_subset_weights(self, alpha):
            return ops.zeros_like(ops.max(ops.cast(alpha, "float32"), axis=1))

    classes = {
        "default": (MetaCleanerModel, None),
        "no_subset_loss": (NoSubsetLoss, None),
        "normalised_members": (NormalisedMembers, None),
        "normalised_all": (NormalisedAll, None),
        "normalised_warmup": (NormalisedWarmup, None),
        "normalised_bootstrap": (NormalisedBootstrap, None),
        "elr_members_late": (ELRMembersLate, None),
        "elr_members": (ELRMembers, None),
        "elr_teacher": (ELRTeacher, None),
        "elr_teacher_distrust": (ELRTeacherDistrust, None),
        "elr_teacher_late": (ELRTeacherLate, None),
        "ema_teacher": (EmaTeacher, None),
        "bootstrap": (Bootstrap, None),
        "bootstrap_t09": (BootstrapT09, None),
        "bootstrap_from5": (BootstrapLate, None),
        "bootstrap_plateau": (BootstrapLate, None),
        "sce_members": (SCEMembers, None),
        "sce_all": (SCEMembers, sce),
        "mixup": (Mixup, None),
    }
    switches = {
        "bootstrap_from5": lambda: BootstrapSwitch(start_epoch=5),
        "bootstrap_plateau": lambda: BootstrapSwitch(patience=2),
    }
    for cls, _ in classes.values():
        if cls is not MetaCleanerModel:
            keras.saving.register_keras_serializable(package="research")(cls)
    return classes, switches


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", required=True, choices=VARIANTS)
    parser.add_argument("--noise", default="symmetric:0.4", help="kind:rate")
    parser.add_argument("--schedule", default="constant", choices=("constant", "step", "cosine"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "out", "variants.jsonl"))
    parser.add_argument("--run_root", default="/tmp/kmc-variants")
    args = parser.parse_args(argv)
    kind, rate = args.noise.split(":")

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import accuracy

    from keras_metacleaner import training
    from keras_metacleaner.training import methods

    classes, switches = variant_classes()
    cls, loss = classes[args.variant]
    base = VARIANTS[args.variant]

    def build(config, backbone_fn, num_classes, num_examples):
        return cls.from_preset(
            base,
            backbone_fn(config.seed),
            num_classes,
            config.subset_size,
            seed=config.seed,
            name="metacleaner",
        )

    extra = {"loss": lambda method_args: loss()} if loss else {}
    if args.variant in switches:
        extra["callbacks"] = lambda model, config: [switches[args.variant]()]
    # The base's method entry, so that the record's configuration lists the base's options.
    methods.METHODS[base] = dataclasses.replace(methods.METHODS[base], build=build, **extra)
    spec = {
        "dataset": "fashion_mnist",
        "epochs": 30,
        "train_size": 10000,
        "validation_split": 0.1,
        "learning_rate": 0.02,
        "batch_size": 128,
        "method": base,
        "noise_type": kind,
        "noise_rate": float(rate),
        "schedule": args.schedule,
        "seed": args.seed,
    }
    name = f"{args.variant}-{kind}{rate}-{args.schedule}-{args.seed}"
    run_dir = os.path.join(args.run_root, name)
    start = time.time()
    results = training.run(accuracy.train_config(spec, run_dir))
    command = "python benchmarks/research/default_variants.py " + " ".join(sys.argv[1:])
    from keras_metacleaner.training.results import git_commit

    record = accuracy.record_from_results(spec, results, git_commit(ROOT), command)
    record.update(variant=args.variant, wall_seconds=time.time() - start)
    accuracy.append(args.out, record)
    print(
        f"{name}: final {record['final']:.4f} picked {record['picked']:.4f} "
        f"oracle {record['oracle']:.4f}"
    )


if __name__ == "__main__":
    main()
