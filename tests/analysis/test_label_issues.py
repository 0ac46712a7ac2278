import numpy as np
import pytest

import keras_metacleaner as kmc
from keras_metacleaner.analysis import alpha_scores, auroc, rank_label_issues


def test_auroc_perfect_chance_and_ties():
    correct = np.array([True, True, False, False])
    assert auroc(np.array([0.9, 0.8, 0.2, 0.1]), correct) == 1.0
    assert auroc(np.array([0.1, 0.2, 0.8, 0.9]), correct) == 0.0
    assert auroc(np.ones(4), correct) == 0.5  # all tied
    assert np.isnan(auroc(np.ones(3), np.ones(3, bool)))  # one group empty
    with pytest.raises(ValueError, match="differ in shape"):
        auroc(np.ones(3), np.ones(4, bool))


def test_auroc_matches_pairwise_count():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, 60).astype(float)  # many ties
    correct = rng.random(60) < 0.6
    pos, neg = scores[correct], scores[~correct]
    pairs = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    assert auroc(scores, correct) == pytest.approx(pairs / (len(pos) * len(neg)))


def test_rank_puts_lowest_first_and_unscored_last():
    assert rank_label_issues(np.array([1.2, np.nan, 0.3, 0.9])).tolist() == [2, 3, 0, 1]


def test_alpha_scores_cover_every_example_and_average_one():
    model = kmc.MetaCleanerModel(
        kmc.models.small_cnn((8, 8, 1), feature_dim=8), num_classes=3, subset_size=4, seed=0
    )
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), [9, 6, 1]).astype("int32")  # 9 pads, 1 has no companions
    images = rng.uniform(0, 255, (len(labels), 8, 8, 1)).astype("float32")
    scores = alpha_scores(model, images, labels, draws=2, seed=0)
    assert scores.shape == (16,)
    assert np.isnan(scores[-1]) and not np.isnan(scores[:-1]).any()
    # Shares are N·α_i/Σα: each subset's shares sum to N, so they hover around 1.
    assert 0.5 < np.nanmean(scores) < 1.5
    np.testing.assert_array_equal(scores, alpha_scores(model, images, labels, draws=2, seed=0))


def test_alpha_scores_bad_input():
    model = kmc.MetaCleanerModel(kmc.models.small_cnn((8, 8, 1)), num_classes=3, subset_size=2)
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        alpha_scores(model, np.zeros((3, 8, 8, 1)), np.zeros(2, "int32"))
    with pytest.raises(ValueError, match="`draws` must be >= 1"):
        alpha_scores(model, np.zeros((2, 8, 8, 1)), np.zeros(2, "int32"), draws=0)


def test_partitions_mix_classes_across_forward_passes():
    from keras_metacleaner.analysis.label_issues import _partition_by_class

    labels = np.repeat(np.arange(4), 40)
    subsets = _partition_by_class(labels, 4, np.random.default_rng(0))
    assert sorted(subsets.ravel().tolist()) == list(range(160))  # each example once
    subset_labels = labels[subsets]
    assert np.all(subset_labels == subset_labels[:, :1])  # one class per subset
    # Not class after class: the first 10 subsets (one batch) hold several classes.
    assert len(np.unique(subset_labels[:10, 0])) > 1
