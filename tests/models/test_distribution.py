"""MetaCleanerModel under tf.distribute.MirroredStrategy on the two logical CPUs of conftest.py.

One training step on 2 replicas must give the weights of the same step on one
device: every replica's loss is its share of the global-batch mean (Keras'
losses divide by the replica count; the model must not divide again), and the
batch is split along K, so every subset stays whole on one replica.

The in-subset shuffle draws its permutation from a per-replica random stream,
which is not the stream a single device draws from. That changes nothing for
an order-equivariant weighting (permuting a subset permutes α, and Eq. 3 is a
sum), so those run with shuffling on; the paper's FC weightings read the
positions, so they run with `shuffle_subsets=False`.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_case import random_subsets, tiny_model, two_replica_strategy

import keras_metacleaner as kmc

K, N, C = 4, 3, 3


def _one_step(model, weights, x, y):
    model.set_weights(weights)
    # One global batch through fit, which splits it between the replicas along K
    # (train_on_batch on arrays hands every replica the whole batch, which would
    # hide a statistic computed per replica).
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(len(x))
    history = model.fit(dataset, epochs=1, verbose=0, shuffle=False)
    logs = {key: values[-1] for key, values in history.history.items()}
    return [v.numpy() for v in model.trainable_weights], logs


@pytest.mark.parametrize(
    "name, mode, shuffle, extra",
    [
        ("label_confidence", "hallucinate", True, {}),
        ("agreement", "hallucinate", True, {}),
        ("fc_fc_relu_sig", "hallucinate", False, {}),
        ("attention_sig", "loss_reweight", True, {}),
        # The auxiliary per-member loss must be scaled like the main one.
        ("label_confidence", "hallucinate", True, {"member_loss_weight": 0.5}),
        # label_posterior's clean share is one estimate over the global batch.
        ("label_posterior", "hallucinate", True, {"subset_loss_weights": "max_alpha"}),
    ],
)
def test_two_replicas_match_one_device(name, mode, shuffle, extra):
    strategy = two_replica_strategy()
    assert strategy.num_replicas_in_sync == 2
    x, y = random_subsets(K, N, num_classes=C, seed=21)
    kwargs = {"mode": mode, "shuffle_subsets": shuffle, "seed": 0, "learning_rate": 0.5, **extra}

    single = tiny_model(name, **kwargs)
    weights = single.get_weights()
    with strategy.scope():
        mirrored = tiny_model(name, **kwargs)

    expected, single_logs = _one_step(single, weights, x, y)
    actual, mirrored_logs = _one_step(mirrored, weights, x, y)

    # Trainable weights only: the default's bootstrap switch is a non-trainable weight.
    start = [w for w, v in zip(weights, single.weights) if v.trainable]
    moved = max(np.abs(a - b).max() for a, b in zip(expected, start))
    assert moved > 1e-3, "the step must move the weights for the comparison to mean anything"
    for variable, a, b in zip(single.trainable_weights, actual, expected):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6, err_msg=variable.path)
    # The logged loss is the global-batch mean, not a replica's share of it.
    assert mirrored_logs["loss"] == pytest.approx(single_logs["loss"], rel=1e-5)
    for key in ("alpha_mean", "alpha_floor"):
        assert mirrored_logs[key] == pytest.approx(single_logs[key], rel=1e-5, abs=1e-6)


def test_label_posterior_estimates_one_clean_share_for_all_replicas():
    strategy = two_replica_strategy()
    layer = kmc.layers.LabelPosteriorWeighting(subset_size=2, floor=0.0)
    # Replica 0: both members in their label's class; replica 1: neither.
    probs = {0: [[[0.7, 0.2, 0.1], [0.6, 0.3, 0.1]]], 1: [[[0.2, 0.7, 0.1], [0.1, 0.6, 0.3]]]}
    log_probs = strategy.experimental_distribute_values_from_function(
        lambda context: tf.math.log(tf.constant(probs[context.replica_id_in_sync_group]))
    )
    labels = tf.constant([0], tf.int32)
    per_replica = strategy.run(lambda lp: layer.class_scores(lp, labels), args=(log_probs,))
    scores = [t.numpy() for t in strategy.experimental_local_results(per_replica)]
    # One device on the whole batch: π = 2/4.
    expected = layer.class_scores(
        tf.math.log(tf.constant(probs[0] + probs[1])), tf.constant([0, 0], tf.int32)
    ).numpy()
    np.testing.assert_allclose(np.concatenate(scores), expected, rtol=1e-5)


def test_the_batch_is_split_between_subsets_not_inside_them():
    strategy = two_replica_strategy()
    x, y = random_subsets(K, N, num_classes=C, seed=22)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(K)
    batch_x, batch_y = next(iter(strategy.experimental_distribute_dataset(dataset)))
    shards = strategy.experimental_local_results(batch_x)
    labels = strategy.experimental_local_results(batch_y)
    assert [tuple(s.shape) for s in shards] == [(K // 2, N, 8, 8, 1)] * 2
    # Together the replicas hold every subset exactly once, whole.
    np.testing.assert_array_equal(np.concatenate([s.numpy() for s in shards]), x)
    np.testing.assert_array_equal(np.concatenate([s.numpy() for s in labels]), y)


def test_fit_under_the_strategy_logs_alpha():
    strategy = two_replica_strategy()
    x, y = random_subsets(2 * K, N, num_classes=C, seed=23)
    with strategy.scope():
        model = tiny_model("label_confidence", seed=0)
    history = model.fit(x, y, batch_size=K, epochs=1, verbose=0)
    for key in ("loss", "alpha_mean", "alpha_std", "alpha_floor"):
        assert np.isfinite(history.history[key][0]), key
    keras.backend.clear_session()


def test_batch_normalisation_divides_by_one_mean_over_all_replicas():
    strategy = two_replica_strategy()
    with strategy.scope():
        model = tiny_model("label_posterior", loss_weight_normalization="batch")
    # Replica 0 trusts its members, replica 1 does not: one device on the whole
    # batch divides both by the same mean, 0.5, and so must the replicas.
    alpha = {0: [[0.9, 0.9, 0.9]], 1: [[0.1, 0.1, 0.1]]}
    per_replica_alpha = strategy.experimental_distribute_values_from_function(
        lambda context: tf.constant(alpha[context.replica_id_in_sync_group])
    )
    per_replica = strategy.run(model._loss_weight_scale, args=(per_replica_alpha,))
    scales = [float(t) for t in strategy.experimental_local_results(per_replica)]
    np.testing.assert_allclose(scales, [2.0, 2.0], rtol=1e-6)
    subsets = strategy.run(model._alpha_subset_weights, args=(per_replica_alpha,))
    weights = [t.numpy() for t in strategy.experimental_local_results(subsets)]
    np.testing.assert_allclose(np.concatenate(weights), [1.8, 0.2], rtol=1e-6)
