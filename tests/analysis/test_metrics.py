"""The label-issue metrics: exact on small cases, chance for a constant score."""

import numpy as np
import pytest

from keras_metacleaner.analysis import (
    auroc,
    average_precision,
    label_issue_metrics,
    precision_at_k,
)


def test_average_precision_matches_the_step_definition():
    wrong = np.array([True, False, True, False, False])
    assert average_precision(np.array([5, 4, 3, 2, 1.0]), wrong) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision(np.array([1, 2, 3, 4, 5.0]), wrong) == pytest.approx(
        (1 / 3 + 2 / 5) / 2
    )
    assert np.isnan(average_precision(np.ones(3), np.zeros(3, bool)))


def test_average_precision_against_pairwise_brute_force():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=50)  # no ties
    wrong = rng.random(50) < 0.3
    order = np.argsort(-scores)
    hits = np.cumsum(wrong[order])
    expected = np.mean([hits[i] / (i + 1) for i in range(50) if wrong[order][i]])
    assert average_precision(scores, wrong) == pytest.approx(expected)


def test_precision_at_k_shares_ties_at_the_cut():
    wrong = np.array([True, False, True, False])
    assert precision_at_k(np.array([4, 3, 2, 1.0]), wrong, 2) == 0.5
    assert precision_at_k(np.array([4, 1, 3, 2.0]), wrong, 2) == 1.0
    with pytest.raises(ValueError, match="`k` must be an integer in \\[1, 4\\]"):
        precision_at_k(np.ones(4), wrong, 0)


@pytest.mark.parametrize("order", ["wrong_first", "wrong_last"])
def test_a_constant_score_measures_chance_whatever_the_order(order):
    wrong = np.zeros(20, bool)
    wrong[:5] = True
    if order == "wrong_last":
        wrong = wrong[::-1]
    metrics = label_issue_metrics(np.full(20, 0.3), wrong, np.zeros(20, bool))
    assert metrics["auroc"] == 0.5
    assert metrics["average_precision"] == pytest.approx(0.25)
    assert metrics["precision_at_k"] == pytest.approx(0.25)
    assert metrics["flagged"] == 0 and np.isnan(metrics["flagged_precision"])
    assert metrics["flagged_recall"] == 0.0


def test_label_issue_metrics_perfect_ranking_and_cut():
    suspicion = np.array([0.9, 0.8, 0.6, 0.2, 0.1, np.nan])
    wrong = np.array([True, True, False, False, False, True])
    metrics = label_issue_metrics(suspicion, wrong, suspicion > 0.5)
    assert metrics == {
        "examples": 5,
        "wrong_labels": 2,
        "auroc": 1.0,
        "average_precision": 1.0,
        "precision_at_k": 1.0,
        "flagged": 3,
        "flagged_precision": pytest.approx(2 / 3),
        "flagged_recall": 1.0,
    }
    with pytest.raises(ValueError, match="differ in shape"):
        label_issue_metrics(suspicion, wrong[:3])


def test_auroc_perfect_and_reversed():
    correct = np.array([True, True, False, False])
    assert auroc(np.array([0.9, 0.8, 0.2, 0.1]), correct) == 1.0
    assert auroc(np.array([0.1, 0.2, 0.8, 0.9]), correct) == 0.0


def test_partly_known_true_labels_are_measured_where_known():
    from keras_metacleaner.analysis import KNOWN_WRONG, UNKNOWN, wrong_labels

    given = np.array([0, 1, 2, 3, 0, 1])
    true = np.array([0, 2, UNKNOWN, KNOWN_WRONG, UNKNOWN, 1])
    wrong, known = wrong_labels(given, true)
    assert wrong.tolist() == [False, True, False, True, False, False]
    assert known.tolist() == [True, True, False, True, False, True]
    suspicion = np.array([0.1, 0.9, 0.99, 0.8, 0.95, 0.2])
    metrics = label_issue_metrics(np.where(known, suspicion, np.nan), wrong)
    # The unknown ones (scored highest here) are left out, not counted as correct.
    assert metrics["examples"] == 4 and metrics["auroc"] == 1.0
    with pytest.raises(ValueError, match="differ in shape"):
        wrong_labels(given, true[:3])
