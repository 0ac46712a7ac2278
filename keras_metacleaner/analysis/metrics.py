"""How well a suspicion score finds the wrong labels, when the true labels are known.

Every metric here treats ties fairly: examples with equal scores count as if
they were ordered at random, so a constant score measures exactly chance
(AUROC 0.5, average precision and precision at k equal to the share of wrong
labels), whatever the order of the examples.
"""

from __future__ import annotations

import numpy as np


def _check(scores, is_positive, name: str) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, np.float64).reshape(-1)
    is_positive = np.asarray(is_positive, bool).reshape(-1)
    if scores.shape != is_positive.shape:
        raise ValueError(f"scores {scores.shape} and {name} {is_positive.shape} differ in shape.")
    keep = ~np.isnan(scores)
    return scores[keep], is_positive[keep]


def auroc(scores: np.ndarray, is_correct: np.ndarray) -> float:
    """Area under the ROC curve of `scores` for telling correct from wrong labels.

    1.0: every correct label scores above every wrong one; 0.5: chance. Ties
    count one half (Mann-Whitney U). NaN scores are ignored.

    Args:
        scores: `[n]` confidence, higher = more likely correct (pass
            `-suspicion` for a suspicion score).
        is_correct: `[n]` booleans, True where the label is right.

    Returns:
        The AUROC, or NaN when one of the two groups is empty.

    Example:

    >>> auroc(np.array([0.9, 0.8, 0.1]), np.array([True, True, False]))
    1.0
    """
    scores, is_correct = _check(scores, is_correct, "is_correct")
    n_pos, n_neg = int(is_correct.sum()), int((~is_correct).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), np.float64)
    sorted_scores = scores[order]
    # Average ranks over ties.
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(scores)]])
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    u = ranks[is_correct].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def average_precision(suspicion: np.ndarray, is_wrong: np.ndarray) -> float:
    """Average precision of `suspicion` at finding the wrong labels.

    The area under the precision-recall curve as a step function over the
    distinct score values (the definition of scikit-learn's
    `average_precision_score`): a group of tied scores enters the list at
    once. NaN scores are ignored.

    Args:
        suspicion: `[n]`, higher = more likely wrong.
        is_wrong: `[n]` booleans, True where the label is wrong.

    Returns:
        Average precision in [0, 1], or NaN when no label is wrong.

    Example:

    >>> average_precision(np.array([0.9, 0.2, 0.8, 0.1]), np.array([True, False, True, False]))
    1.0
    """
    suspicion, is_wrong = _check(suspicion, is_wrong, "is_wrong")
    total = int(is_wrong.sum())
    if total == 0:
        return float("nan")
    order = np.argsort(-suspicion, kind="mergesort")
    sorted_scores, hits = suspicion[order], is_wrong[order]
    # The last position of every group of equal scores.
    ends = np.concatenate([np.flatnonzero(np.diff(sorted_scores)), [len(sorted_scores) - 1]])
    true_positives = np.cumsum(hits)[ends]
    precision = true_positives / (ends + 1)
    recall = true_positives / total
    return float(np.sum(np.diff(np.concatenate([[0.0], recall])) * precision))


def precision_at_k(suspicion: np.ndarray, is_wrong: np.ndarray, k: int) -> float:
    """Share of wrong labels among the `k` most suspicious examples.

    Ties at the cut are shared: a group of equal scores that straddles the
    k-th place contributes its share of wrong labels times the places it
    takes, the expected precision under a random order of the ties.

    Args:
        suspicion: `[n]`, higher = more likely wrong.
        is_wrong: `[n]` booleans.
        k: how many of the most suspicious examples to inspect (>= 1).

    Returns:
        Precision in [0, 1].

    Example:

    >>> precision_at_k(np.array([0.9, 0.5, 0.5, 0.1]), np.array([True, True, False, False]), 2)
    0.75
    """
    suspicion, is_wrong = _check(suspicion, is_wrong, "is_wrong")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= len(suspicion):
        raise ValueError(f"`k` must be an integer in [1, {len(suspicion)}], got {k!r}.")
    threshold = np.sort(suspicion)[::-1][k - 1]
    above = suspicion > threshold
    tied = suspicion == threshold
    places = k - int(above.sum())
    hits = is_wrong[above].sum() + places * is_wrong[tied].mean()
    return float(hits / k)


#: In true-label arrays: the true class is unknown (e.g. an unverified example).
UNKNOWN = -1
#: In true-label arrays: the given label is known to be wrong, its true class is not
#: (e.g. an example that a human verification marked wrong).
KNOWN_WRONG = -2


def wrong_labels(given, true) -> tuple[np.ndarray, np.ndarray]:
    """Which given labels are wrong, where that is known.

    Args:
        given: `[n]` the labels checked.
        true: `[n]` true labels: a class id, `UNKNOWN` (-1) or `KNOWN_WRONG`
            (-2, wrong with the true class unknown), as verified subsets
            such as Food-101N's provide them.

    Returns:
        `(is_wrong, known)`, two boolean `[n]` arrays.

    Example:

    >>> wrong, known = wrong_labels([0, 1, 2, 3], [0, 2, -1, -2])
    >>> wrong.tolist(), known.tolist()
    ([False, True, False, True], [True, True, False, True])
    """
    given = np.asarray(given).reshape(-1)
    true = np.asarray(true).reshape(-1)
    if given.shape != true.shape:
        raise ValueError(f"given {given.shape} and true {true.shape} labels differ in shape.")
    known = (true >= 0) | (true == KNOWN_WRONG)
    return (true == KNOWN_WRONG) | ((true >= 0) & (true != given)), known


def label_issue_metrics(
    suspicion: np.ndarray, is_wrong: np.ndarray, flagged: np.ndarray | None = None
) -> dict:
    """Every number the tools report for a ranking of wrong labels.

    Args:
        suspicion: `[n]`, higher = more likely wrong (NaN = not scored,
            left out).
        is_wrong: `[n]` booleans, True where the given label is wrong.
        flagged: optional `[n]` booleans, the examples a rule marked as
            issues (the tool's cut); adds their precision and recall.

    Returns:
        A dict with `examples`, `wrong_labels`, `auroc` (of telling wrong
        from right, higher suspicion = wrong), `average_precision`,
        `precision_at_k` (k = the true number of wrong labels) and, with
        `flagged`: `flagged`, `flagged_precision`, `flagged_recall`.

    Example:

    >>> m = label_issue_metrics(np.array([0.9, 0.1, 0.8]), np.array([True, False, False]))
    >>> m["auroc"], m["precision_at_k"]
    (1.0, 1.0)
    """
    suspicion = np.asarray(suspicion, np.float64).reshape(-1)
    is_wrong = np.asarray(is_wrong, bool).reshape(-1)
    if suspicion.shape != is_wrong.shape:
        raise ValueError(
            f"suspicion {suspicion.shape} and is_wrong {is_wrong.shape} differ in shape."
        )
    scored = ~np.isnan(suspicion)
    wrong = int(is_wrong[scored].sum())
    result = {
        "examples": int(scored.sum()),
        "wrong_labels": wrong,
        "auroc": auroc(-suspicion, ~is_wrong),
        "average_precision": average_precision(suspicion, is_wrong),
        "precision_at_k": (
            precision_at_k(suspicion, is_wrong, wrong) if 0 < wrong else float("nan")
        ),
    }
    if flagged is not None:
        flagged = np.asarray(flagged, bool).reshape(-1)
        if flagged.shape != is_wrong.shape:
            raise ValueError(
                f"flagged {flagged.shape} and is_wrong {is_wrong.shape} differ in shape."
            )
        flagged = flagged & scored
        hits = int((flagged & is_wrong).sum())
        result.update(
            flagged=int(flagged.sum()),
            flagged_precision=hits / int(flagged.sum()) if flagged.any() else float("nan"),
            flagged_recall=hits / wrong if wrong else float("nan"),
        )
    return result
