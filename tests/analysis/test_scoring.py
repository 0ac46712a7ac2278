"""score_labels: a label flipped on purpose must rank above its clean twins."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_case import group_subsets, tiny_model

import keras_metacleaner as kmc
from keras_metacleaner.analysis import (
    SUSPICIONS,
    LabelScores,
    alpha_scores,
    auroc,
    label_issue_metrics,
    score_labels,
)

NUM_CLASSES = 4
TWINS = 10  # identical images per class


def _flatten_backbone():
    """Images [2, 2, 1] -> their 4 pixels as features: no training, exact math."""
    images = keras.Input((2, 2, 1))
    return keras.Model(images, keras.layers.Flatten()(images), name="flatten")


def _known_classifier(subset_size: int = 4, weighting: str = "label_posterior"):
    """A MetaCleanerModel whose classifier is right by construction: logits = 6·pixels."""
    model = kmc.MetaCleanerModel(
        _flatten_backbone(),
        num_classes=NUM_CLASSES,
        subset_size=subset_size,
        weighting=weighting,
        hidden_units=4,
        seed=0,
    )
    model.classifier.set_weights([6.0 * np.eye(NUM_CLASSES), np.zeros(NUM_CLASSES)])
    return model


def _twins(flips=((0, 1), (25, 3), (37, 0))):
    """TWINS identical images per class (one bright pixel); `flips` = (index, wrong label)."""
    true = np.repeat(np.arange(NUM_CLASSES), TWINS).astype("int32")
    images = np.eye(NUM_CLASSES, dtype="float32")[true].reshape(-1, 2, 2, 1)
    given = true.copy()
    for index, label in flips:
        assert label != true[index]
        given[index] = label
    return images, given, true


def _plain(model):
    """The same classifier as a plain functional model (no α)."""
    return model.inference_model()


@pytest.mark.parametrize("kind", ["metacleaner", "plain"])
def test_flipped_labels_rank_above_their_clean_twins(kind):
    model = _known_classifier()
    images, given, true = _twins()
    scores = score_labels(model if kind == "metacleaner" else _plain(model), images, given)
    flipped = np.flatnonzero(given != true)
    for index in flipped:
        twins = np.flatnonzero((true == true[index]) & (given == true))
        # Strictly above every clean twin: a constant (or any tied) score fails.
        assert scores.suspicion[index] > scores.suspicion[twins].max()
    assert set(scores.ranking()[: len(flipped)]) == set(flipped)
    assert scores.predicted_label.tolist() == true.tolist()
    np.testing.assert_array_equal(scores.given_label, given)
    metrics = label_issue_metrics(scores.suspicion, given != true, scores.flagged())
    assert metrics["auroc"] == 1.0 and metrics["precision_at_k"] == 1.0
    assert metrics["flagged"] == len(flipped) and metrics["flagged_precision"] == 1.0
    if kind == "plain":
        assert np.isnan(scores.alpha).all()


def test_alpha_is_low_for_the_flipped_labels():
    images, given, true = _twins()
    scores = score_labels(_known_classifier(), images, given)
    flipped = given != true
    assert scores.alpha[flipped].max() < scores.alpha[~flipped].min()
    # The default weighting's α spans [floor, 1]: the flipped ones at its floor.
    assert scores.alpha[flipped].max() < 0.1 and scores.alpha[~flipped].min() > 0.9


def test_alpha_scores_rank_flipped_labels_below_clean_ones():
    images, given, true = _twins()
    shares = alpha_scores(_known_classifier(), images, given, draws=3, seed=1)
    correct = given == true
    assert shares[~correct].max() < shares[correct].min()
    assert auroc(shares, correct) == 1.0


def test_every_field_follows_the_probabilities():
    model = _plain(_known_classifier())
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (30, 2, 2, 1)).astype("float32")
    labels = rng.integers(0, NUM_CLASSES, 30).astype("int32")
    probs = keras.ops.convert_to_numpy(model(images))
    scores = score_labels(model, images, labels, batch_size=8, chunk_size=8)
    rows = np.arange(30)
    np.testing.assert_allclose(scores.label_probability, probs[rows, labels], rtol=1e-5)
    np.testing.assert_array_equal(scores.predicted_label, probs.argmax(1))
    np.testing.assert_allclose(scores.predicted_probability, probs.max(1), rtol=1e-5)
    others = probs.copy()
    others[rows, labels] = -1
    np.testing.assert_allclose(scores.other_probability, others.max(1), rtol=1e-5)
    # The default rule, the normalised margin.
    np.testing.assert_allclose(
        scores.suspicion, 0.5 * (1 + others.max(1) - probs[rows, labels]), rtol=1e-5
    )
    for rule in SUSPICIONS:
        values = scores.with_suspicion(rule).suspicion
        assert values.shape == (30,) and np.all((values >= 0) & (values <= 1)), rule


def test_streams_datasets_in_chunks_with_the_same_result():
    model = _known_classifier()
    images, given, _ = _twins()
    reference = score_labels(model, images, given, chunk_size=1024, seed=3)
    pairs = tf.data.Dataset.from_tensor_slices((images, given))
    # Companions of α come from each chunk: a chunk the size of the data gives the same α.
    from_pairs = score_labels(model, pairs, chunk_size=1024, seed=3)
    batched = score_labels(model, pairs.batch(7), chunk_size=1024, seed=3)
    images_only = score_labels(
        model, tf.data.Dataset.from_tensor_slices(images), given, chunk_size=1024, seed=3
    )
    for other in (from_pairs, batched, images_only):
        np.testing.assert_allclose(other.suspicion, reference.suspicion)
        np.testing.assert_allclose(other.alpha, reference.alpha)
    # Small chunks: still every example scored, the flipped ones still on top.
    small = score_labels(model, pairs, batch_size=8, chunk_size=16, seed=3)
    assert not np.isnan(small.suspicion).any()
    np.testing.assert_allclose(small.suspicion, reference.suspicion, rtol=1e-5)


def test_a_trained_model_finds_injected_flips():
    """End to end: fit on 20% flipped labels, the flips come out on top."""
    rng = np.random.default_rng(0)
    true = np.repeat(np.arange(3), 64).astype("int32")
    images = rng.uniform(0, 60, (len(true), 8, 8, 1)).astype("float32")
    for i, c in enumerate(true):
        images[i, 2 * c : 2 * c + 3, 2 * c : 2 * c + 3] += 190.0
    given = true.copy()
    flip = rng.choice(len(true), len(true) // 5, replace=False)
    given[flip] = (true[flip] + rng.integers(1, 3, len(flip))) % 3
    model = tiny_model(subset_size=4, num_classes=3, seed=0)
    x, y = group_subsets(images, given, 4, seed=0)
    model.fit(x, y, batch_size=8, epochs=6, verbose=0)
    scores = score_labels(model, images, given)
    metrics = label_issue_metrics(scores.suspicion, given != true)
    assert metrics["auroc"] > 0.9, metrics


def test_bad_input_names_the_argument():
    model = _known_classifier()
    images, given, _ = _twins()
    with pytest.raises(ValueError, match="`labels` has 41 entries but there are 40 images"):
        score_labels(model, images, np.append(given, 0))
    with pytest.raises(ValueError, match="`labels` has 39 entries but the images are more"):
        score_labels(model, images, given[:-1])
    with pytest.raises(ValueError, match="class ids in \\[0, 4\\), found 7"):
        score_labels(model, images, np.full(40, 7))
    with pytest.raises(ValueError, match="`labels` is required"):
        score_labels(model, images)
    with pytest.raises(ValueError, match="`draws` must be an integer >= 1"):
        score_labels(model, images, given, draws=0)
    with pytest.raises(ValueError, match="`chunk_size`=8 must be >= batch_size=16"):
        score_labels(model, images, given, batch_size=16, chunk_size=8)
    with pytest.raises(ValueError, match="`suspicion`='nope'"):
        score_labels(model, images, given, suspicion="nope")
    with pytest.raises(ValueError, match="must be an array \\[n, H, W, C\\]"):
        score_labels(model, images[0], given)
    logits = keras.Model(model.backbone.input, model.classifier(model.backbone.output))
    with pytest.raises(ValueError, match="not probabilities"):
        score_labels(logits, images, given)


def test_ranking_puts_unscored_examples_last():
    nan = float("nan")
    values = [np.array(v) for v in ([0, 0, 0, 0], [1, 1, 1, 1])]
    scores = LabelScores(
        *values,
        *([np.zeros(4)] * 4),
        suspicion=np.array([0.2, nan, 0.9, 0.2]),
    )
    assert scores.ranking().tolist() == [2, 0, 3, 1]
    assert scores.flagged().tolist() == [False, False, True, False]


def test_reads_the_loaded_data_of_load(tmp_path):
    from test_case import write_noisy_npz

    npz = write_noisy_npz(str(tmp_path / "toy.npz"))
    loaded = kmc.data.load(f"npz:{npz}")
    model = tiny_model(subset_size=2, num_classes=4, seed=0)
    scores = score_labels(model, loaded, chunk_size=64, batch_size=32)
    np.testing.assert_array_equal(scores.given_label, loaded.labels)
    same = score_labels(model, loaded.train, loaded.labels, chunk_size=64, batch_size=32)
    np.testing.assert_allclose(scores.suspicion, same.suspicion)
