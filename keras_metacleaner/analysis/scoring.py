"""`score_labels`: how likely each training label is wrong, in one streaming pass."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_metacleaner.analysis.label_issues import _partition_by_class
from keras_metacleaner.models import MetaCleanerModel


@dataclasses.dataclass
class LabelScores:
    """Per-example scores of `score_labels`, NumPy arrays of length n in input order.

    Args:
        given_label: int32, the label that was checked.
        alpha: float, the cleaner's mean weight α of the example among
            companions of its given class (in [floor, 1] for the default
            weighting; 1 = trusted); NaN for plain classifiers and for
            examples without a companion of their class.
        label_probability: float, the classifier's probability of the given
            label.
        predicted_label: int32, the classifier's most likely class.
        predicted_probability: float, its probability.
        other_probability: float, the largest probability of a class other
            than the given one.
        suspicion: float in [0, 1], higher = more likely wrong (see
            `SUSPICIONS`).
        suspicion_rule: the name in `SUSPICIONS` that made `suspicion`.
    """

    given_label: np.ndarray
    alpha: np.ndarray
    label_probability: np.ndarray
    predicted_label: np.ndarray
    predicted_probability: np.ndarray
    other_probability: np.ndarray
    suspicion: np.ndarray
    suspicion_rule: str = "margin"

    def __len__(self) -> int:
        return len(self.given_label)

    def ranking(self) -> np.ndarray:
        """Indices, most suspicious first (ties in input order; NaN last)."""
        suspicion = np.where(np.isnan(self.suspicion), -np.inf, self.suspicion)
        return np.argsort(-suspicion, kind="stable")

    def flagged(self, threshold: float = 0.5) -> np.ndarray:
        """Booleans: suspicion above `threshold` (0.5: more likely wrong than right).

        With the default rule this flags every example whose classifier puts
        another class above the given label.
        """
        return np.nan_to_num(self.suspicion, nan=-np.inf) > threshold

    def with_suspicion(self, rule: str) -> LabelScores:
        """The same scores with `suspicion` recomputed by another rule of `SUSPICIONS`."""
        return dataclasses.replace(
            self, suspicion=compute_suspicion(self, rule), suspicion_rule=rule
        )


def _alpha_or_classifier(scores: LabelScores, fallback: np.ndarray) -> np.ndarray:
    alpha = np.asarray(scores.alpha, np.float64)
    return np.where(np.isnan(alpha), fallback, 1.0 - alpha)


def _class_normalized(scores: LabelScores) -> np.ndarray:
    # Confident learning's per-class threshold: the mean self-confidence of
    # the examples given each label. A label scores against its own class's
    # typical confidence, so hard classes are not all flagged.
    labels, p = scores.given_label, np.asarray(scores.label_probability, np.float64)
    totals = np.bincount(labels, weights=p)
    counts = np.bincount(labels)
    threshold = totals[labels] / np.maximum(counts[labels], 1)
    return threshold / np.maximum(threshold + p, 1e-12)


def _margin(scores: LabelScores) -> np.ndarray:
    return 0.5 * (1.0 + scores.other_probability - scores.label_probability)


#: Ways to turn the scores into one suspicion in [0, 1], higher = more likely
#: wrong. `benchmarks/label_issues.py` measures each; `DEFAULT_SUSPICION` is
#: the one that measured best (docs/label_issues.md).
SUSPICIONS: dict[str, Callable[[LabelScores], np.ndarray]] = {
    # 1 - p(given | x): the classifier's doubt in the given label.
    "label_probability": lambda s: 1.0 - s.label_probability,
    # 1 - p(given | x) / max_c p(c | x): doubt relative to the top class.
    "relative": lambda s: 1.0 - s.label_probability / np.maximum(s.predicted_probability, 1e-12),
    # (1 + max_{c != given} p(c | x) - p(given | x)) / 2: cleanlab's normalised margin.
    "margin": _margin,
    # 1 - α (the classifier's doubt for plain classifiers, which have no α).
    "alpha": lambda s: _alpha_or_classifier(s, 1.0 - s.label_probability),
    # 1 - α·p(given | x): both must trust the label.
    "alpha_times_probability": lambda s: (
        1.0 - np.where(np.isnan(s.alpha), 1.0, s.alpha) * s.label_probability
    ),
    # Mean of the margin and 1 - α.
    "alpha_margin": lambda s: 0.5 * (_margin(s) + _alpha_or_classifier(s, _margin(s))),
    # p(given | x) against the mean p(given | x) of its class.
    "class_normalized": _class_normalized,
}
DEFAULT_SUSPICION = "margin"


def compute_suspicion(scores: LabelScores, rule: str = DEFAULT_SUSPICION) -> np.ndarray:
    """`suspicion` of `scores` under one of the rules of `SUSPICIONS`.

    Args:
        scores: a `LabelScores` (its `suspicion` is not read).
        rule: a name in `SUSPICIONS`.

    Returns:
        float64 `[n]`, higher = more likely wrong.

    Example:

    >>> s = LabelScores(*([np.array([0.0])] * 7))
    >>> compute_suspicion(dataclasses.replace(s, label_probability=np.array([0.2]),
    ...     other_probability=np.array([0.8])), "margin").tolist()
    [0.8]
    """
    if rule not in SUSPICIONS:
        raise ValueError(f"`suspicion`={rule!r}: expected one of {sorted(SUSPICIONS)}.")
    return np.asarray(SUSPICIONS[rule](scores), np.float64)


# ---------------------------------------------------------------------- input
def _as_chunks(images_or_dataset, labels, chunk_size: int):
    """Yields `(images [m, H, W, C] float32, labels [m] or None)` chunks in order."""
    source = images_or_dataset
    if not isinstance(source, (tf.data.Dataset, np.ndarray)) and hasattr(source, "train"):
        # A LoadedData of keras_metacleaner.data.load: its training split and labels.
        if labels is None:
            labels = getattr(source, "labels", None)
        source = source.train
    if isinstance(source, tf.data.Dataset):
        spec = source.element_spec
        image_spec = spec[0] if isinstance(spec, tuple) else spec
        if not isinstance(image_spec, tf.TensorSpec):
            raise ValueError(
                "images_or_dataset: a dataset must yield images or (image, label) pairs, got "
                f"elements {spec}."
            )
        if image_spec.shape.rank == 4:
            source = source.unbatch()
        elif image_spec.shape.rank != 3:
            raise ValueError(
                "images_or_dataset: dataset images must have shape [H, W, C] (or batches "
                f"[B, H, W, C]), got {image_spec.shape}."
            )
        for element in source.batch(chunk_size).as_numpy_iterator():
            if isinstance(element, tuple):
                yield np.asarray(element[0], np.float32), np.asarray(element[1])
            else:
                yield np.asarray(element, np.float32), None
        return
    images = np.asarray(source)
    if images.ndim != 4:
        raise ValueError(
            f"images_or_dataset: images must be an array [n, H, W, C], got shape {images.shape}."
        )
    for start in range(0, len(images), chunk_size):
        yield images[start : start + chunk_size].astype(np.float32, copy=False), None


def _resolve_labels(labels) -> np.ndarray | None:
    if labels is None:
        return None
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"`labels` must be 1-D class ids, got shape {labels.shape}.")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"`labels` must be integer class ids, got dtype {labels.dtype}.")
    return labels.astype(np.int64)


# -------------------------------------------------------------------- scoring
class _Scorer:
    """Runs the model on one chunk: probabilities, and α for a MetaCleanerModel."""

    def __init__(self, model, batch_size: int, draws: int, rng: np.random.Generator):
        self.batch_size = batch_size
        self.draws = draws
        self.rng = rng
        self.cleaner_model = model if isinstance(model, MetaCleanerModel) else None
        if self.cleaner_model is None and hasattr(model, "inference_model"):
            model = model.inference_model()  # e.g. peers that train on other inputs
        self.model = model

    def probabilities(self, images: np.ndarray):
        """`[m, C]` probabilities, and what `alpha` needs (features and logits)."""
        if self.cleaner_model is None:
            probs = self._batched(lambda x: self.model(x, training=False), images)
            return _check_probabilities(probs), None
        model = self.cleaner_model
        features = self._batched(lambda x: model.backbone(x, training=False), images)
        logits = ops.convert_to_numpy(model.classifier(features)).astype(np.float32)
        probs = ops.convert_to_numpy(model.probabilities(logits)).astype(np.float64)
        return probs, (features, logits)

    def alpha(self, state, labels: np.ndarray) -> np.ndarray:
        """Mean α per example (NaN without a cleaner)."""
        if state is None:
            return np.full(len(labels), np.nan)
        return self._alpha(*state, labels)

    def _batched(self, fn, images: np.ndarray) -> np.ndarray:
        outputs = [
            ops.convert_to_numpy(fn(ops.convert_to_tensor(images[i : i + self.batch_size])))
            for i in range(0, len(images), self.batch_size)
        ]
        return np.concatenate(outputs)

    def _alpha(self, features, logits, labels) -> np.ndarray:
        """Mean α of each example over `draws` random subsets of its class in this chunk."""
        model = self.cleaner_model
        n_subset = model.subset_size
        totals = np.zeros(len(labels), np.float64)
        counts = np.zeros(len(labels), np.int64)
        weighting = model.weighting
        for _ in range(self.draws):
            subsets = _partition_by_class(labels, n_subset, self.rng)
            # Subsets of one training batch's size at a time: weightings that
            # read batch statistics (label_posterior's clean share) see what
            # they saw in training.
            step = max(1, self.batch_size // n_subset)
            for start in range(0, len(subsets), step):
                chunk = subsets[start : start + step]
                class_scores = None
                if weighting.uses_class_scores:
                    log_probs = ops.log_softmax(ops.convert_to_tensor(logits[chunk]), axis=-1)
                    class_scores = weighting.class_scores(
                        log_probs, ops.convert_to_tensor(labels[chunk[:, 0]].astype(np.int32))
                    )
                _, alpha = model.cleaner(ops.convert_to_tensor(features[chunk]), class_scores)
                np.add.at(totals, chunk.ravel(), ops.convert_to_numpy(alpha).ravel())
                np.add.at(counts, chunk.ravel(), 1)
        alpha = np.full(len(labels), np.nan)
        seen = counts > 0
        alpha[seen] = totals[seen] / counts[seen]
        return alpha


def _check_probabilities(probs: np.ndarray) -> np.ndarray:
    probs = np.asarray(probs, np.float64)
    if probs.ndim != 2:
        raise ValueError(f"model: expected class probabilities [B, C], got shape {probs.shape}.")
    sums = probs.sum(axis=1)
    if probs.size and (probs.min() < -1e-6 or np.abs(sums - 1.0).max() > 1e-3):
        raise ValueError(
            "model: outputs are not probabilities (negative, or rows that do not sum to 1); "
            "end the model with a softmax."
        )
    return probs


def score_labels(
    model: keras.Model,
    images_or_dataset,
    labels=None,
    *,
    batch_size: int = 256,
    chunk_size: int = 8192,
    draws: int = 4,
    seed: int = 0,
    suspicion: str = DEFAULT_SUSPICION,
) -> LabelScores:
    """Scores how likely each given label is wrong, reading the data once, chunk by chunk.

    Every image passes through the backbone once. For a `MetaCleanerModel`
    the cleaner then weighs each image among companions of its given class
    from the same chunk (`draws` random subsets of N, averaged), as in
    training; the classifier gives the probability of the given label and
    the most likely class. A plain classifier (images -> probabilities, or a
    model with `inference_model()`) gives the same without α. Memory holds
    one chunk of images and n numbers per field, so the source may be far
    larger than memory.

    Args:
        model: a trained `MetaCleanerModel` or a classifier from images
            `[B, H, W, C]` (raw pixels) to probabilities `[B, C]`.
        images_or_dataset: images `[n, H, W, C]`, a `tf.data.Dataset` of
            images or of `(image, label)` pairs (unbatched or batched, in a
            fixed order), or the `LoadedData` of `keras_metacleaner.data.load`.
        labels: `[n]` labels to check (e.g. the noisy training labels);
            None takes them from the dataset.
        batch_size: images per forward pass.
        chunk_size: images read at a time; α's companions come from the same
            chunk, so it should hold several examples of every class.
        draws: random subset partitions α is averaged over.
        seed: seed of the partitions.
        suspicion: the rule of `SUSPICIONS` for `suspicion`.

    Returns:
        A `LabelScores`.

    Example:

    >>> scores = score_labels(model, loaded.train, loaded.labels)  # doctest: +SKIP
    >>> worst = scores.ranking()[:20]  # doctest: +SKIP
    """
    for name, value, low in (("batch_size", batch_size, 1), ("draws", draws, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"`{name}` must be an integer >= {low}, got {value!r}.")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)):
        raise ValueError(f"`chunk_size` must be an integer, got {chunk_size!r}.")
    if chunk_size < batch_size:
        raise ValueError(f"`chunk_size`={chunk_size} must be >= batch_size={batch_size}.")
    if suspicion not in SUSPICIONS:
        raise ValueError(f"`suspicion`={suspicion!r}: expected one of {sorted(SUSPICIONS)}.")
    labels = _resolve_labels(labels)
    scorer = _Scorer(model, int(batch_size), int(draws), np.random.default_rng(seed))
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("given", "alpha", "label", "predicted", "top", "other")
    }
    seen = 0
    num_classes = None
    for images, chunk_labels in _as_chunks(images_or_dataset, labels, int(chunk_size)):
        if labels is not None:
            if seen + len(images) > len(labels):
                raise ValueError(
                    f"`labels` has {len(labels)} entries but the images are more "
                    f"(at least {seen + len(images)})."
                )
            chunk_labels = labels[seen : seen + len(images)]
        elif chunk_labels is None:
            raise ValueError(
                "`labels` is required when the images come without labels (an array, or a "
                "dataset of images only)."
            )
        chunk_labels = np.asarray(chunk_labels).astype(np.int64).reshape(-1)
        probs, state = scorer.probabilities(images)
        num_classes = probs.shape[1]
        if chunk_labels.size and (chunk_labels.min() < 0 or chunk_labels.max() >= num_classes):
            bad = chunk_labels[(chunk_labels < 0) | (chunk_labels >= num_classes)][0]
            raise ValueError(
                f"`labels` must be class ids in [0, {num_classes}), found {bad} "
                f"(example {seen + int(np.argmax(chunk_labels == bad))})."
            )
        alpha = scorer.alpha(state, chunk_labels)
        rows = np.arange(len(chunk_labels))
        label_p = probs[rows, chunk_labels]
        others = probs.copy()
        others[rows, chunk_labels] = -np.inf
        parts["given"].append(chunk_labels.astype(np.int32))
        parts["alpha"].append(alpha)
        parts["label"].append(label_p)
        parts["predicted"].append(np.argmax(probs, axis=1).astype(np.int32))
        parts["top"].append(probs.max(axis=1))
        parts["other"].append(others.max(axis=1))
        seen += len(images)
    if labels is not None and seen != len(labels):
        raise ValueError(f"`labels` has {len(labels)} entries but there are {seen} images.")

    def join(key, dtype):
        return np.concatenate(parts[key]).astype(dtype) if parts[key] else np.zeros(0, dtype)

    scores = LabelScores(
        given_label=join("given", np.int32),
        alpha=join("alpha", np.float64),
        label_probability=join("label", np.float64),
        predicted_label=join("predicted", np.int32),
        predicted_probability=join("top", np.float64),
        other_probability=join("other", np.float64),
        suspicion=np.zeros(0),
        suspicion_rule=suspicion,
    )
    scores.suspicion = compute_suspicion(scores, suspicion)
    return scores
