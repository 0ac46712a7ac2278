"""Which labels are wrong: per-example confidence from the cleaner's α."""

from __future__ import annotations

import numpy as np

from keras_metacleaner.analysis.metrics import auroc  # noqa: F401  (its old home)


def alpha_scores(
    model,
    images: np.ndarray,
    labels: np.ndarray,
    draws: int = 4,
    seed: int = 0,
    batch_size: int = 64,
) -> np.ndarray:
    """Per-example confidence that its label is right: mean normalised α.

    Each draw splits every class into random subsets of N examples (the last
    subset of a class is completed with other examples of the same class),
    runs the trained cleaner on them and records `N·α_i / Σ_j α_j`, the
    member's share of the hallucinated feature relative to a uniform mean
    (1.0 = average, below 1 = down-weighted). Scores are averaged over draws,
    so they do not depend on one particular set of companions.

    Args:
        model: a trained `MetaCleanerModel`.
        images: `[n, H, W, C]` raw-pixel images.
        labels: `[n]` (noisy) integer labels.
        draws: how many random subset partitions to average over.
        seed: seed of the partitions.
        batch_size: subsets per forward pass.

    Returns:
        `[n]` float array; low means the label looks wrong.

    Example:

    >>> scores = alpha_scores(model, x_train[:1000], y_noisy[:1000])  # doctest: +SKIP
    >>> suspicious = rank_label_issues(scores)[:20]  # doctest: +SKIP
    """
    images = np.asarray(images)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels.")
    if draws < 1:
        raise ValueError(f"`draws` must be >= 1, got {draws}.")
    n_subset = model.subset_size
    rng = np.random.default_rng(seed)
    totals = np.zeros(len(labels), np.float64)
    counts = np.zeros(len(labels), np.int64)
    for _ in range(draws):
        subsets = _partition_by_class(labels, n_subset, rng)
        if len(subsets) == 0:
            break
        _, alpha = model.predict_sets(
            images[subsets], labels[subsets[:, 0]], batch_size=batch_size, return_weights=True
        )
        alpha = alpha.astype(np.float64)
        share = n_subset * alpha / np.maximum(alpha.sum(axis=1, keepdims=True), 1e-12)
        np.add.at(totals, subsets.ravel(), share.ravel())
        np.add.at(counts, subsets.ravel(), 1)
    scores = np.full(len(labels), np.nan)
    seen = counts > 0
    scores[seen] = totals[seen] / counts[seen]
    return scores


def _partition_by_class(
    labels: np.ndarray, subset_size: int, rng: np.random.Generator
) -> np.ndarray:
    """Random `[S, N]` index subsets covering every example once (classes padded)."""
    subsets = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        if len(members) < 2 and subset_size > 1:
            continue  # A lone example has no companions to be compared with.
        remainder = (-len(members)) % subset_size
        if remainder:
            padding = rng.choice(members, remainder, replace=remainder > len(members))
            members = np.concatenate([members, padding])
        subsets.append(members.reshape(-1, subset_size))
    if not subsets:
        return np.zeros((0, subset_size), np.int64)
    subsets = np.concatenate(subsets)
    # Classes mixed across forward passes, as in training batches: a weighting
    # that reads batch statistics (label_posterior's clean share) sees the same
    # kind of batch it was trained on, not one class at a time.
    return subsets[rng.permutation(len(subsets))]


def rank_label_issues(scores: np.ndarray) -> np.ndarray:
    """Indices of examples, most suspicious label first (lowest score).

    Args:
        scores: `[n]` confidence from `alpha_scores` (NaN = not scored, last).

    Returns:
        `[n]` int array of indices.

    Example:

    >>> rank_label_issues(np.array([1.2, 0.3, 0.9])).tolist()
    [1, 2, 0]
    """
    scores = np.asarray(scores, np.float64)
    return np.argsort(np.where(np.isnan(scores), np.inf, scores), kind="stable")
