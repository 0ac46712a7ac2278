"""Tests for keras_metacleaner.data.grouping (both the index and the streaming path)."""

import dataclasses
import logging
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import keras_metacleaner as kmc
from keras_metacleaner.data import group_by_class
from keras_metacleaner.data.sources import common

PATHS = ["index", "stream"]


def _data(labels, size=4):
    """Images whose pixels all equal their index, so batches can be traced back."""
    labels = np.asarray(labels, dtype=np.int32)
    images = np.broadcast_to(
        np.arange(labels.size, dtype=np.float32)[:, None, None, None], (labels.size, size, size, 1)
    ).copy()
    return images, labels


def _dataset(labels, path):
    images, labels = _data(labels)
    if path == "index":
        return common.array_dataset(images, labels)
    # A user-mapped dataset has no random-access view: the streaming path.
    return tf.data.Dataset.from_tensor_slices((images, labels)).map(lambda x, y: (x, y))


def _epoch(ds):
    """All batches of one iteration as (indices [B, K, N], labels [B, K])."""
    indices, labels = [], []
    for x, y in ds:
        indices.append(x.numpy()[..., 0, 0, 0].astype(int))
        labels.append(y.numpy())
    return np.stack(indices), np.stack(labels)


@pytest.mark.parametrize("path", PATHS)
def test_subsets_share_their_label_and_shapes_are_static(path):
    labels = np.arange(96) % 6
    ds = group_by_class(_dataset(labels, path), subset_size=4, groups_per_batch=3, seed=1)
    assert ds.element_spec[0].shape == (3, 4, 4, 4, 1)
    assert ds.element_spec[1].shape == (3,)
    assert ds.element_spec[1].dtype == tf.int32
    indices, batch_labels = _epoch(ds)
    np.testing.assert_array_equal(labels[indices], np.repeat(batch_labels[..., None], 4, -1))


@pytest.mark.parametrize("path", PATHS)
def test_each_example_used_once_per_epoch_when_classes_divide(path):
    # 4 classes of 12, N=4: 12 subsets, K=3: 4 full batches, nothing padded or dropped.
    labels = np.arange(48) % 4
    ds = group_by_class(_dataset(labels, path), subset_size=4, groups_per_batch=3, seed=0)
    indices, _ = _epoch(ds)
    np.testing.assert_array_equal(np.sort(indices.ravel()), np.arange(48))


@pytest.mark.parametrize("path", PATHS)
def test_subsets_are_redrawn_every_epoch_and_deterministic(path):
    labels = np.arange(120) % 5

    def build(seed):
        return group_by_class(_dataset(labels, path), 4, 5, seed=seed)

    ds = build(3)
    first, second = _epoch(ds)[0], _epoch(ds)[0]
    assert not np.array_equal(first, second), "the second epoch repeated the first one"
    again = build(3)
    np.testing.assert_array_equal(_epoch(again)[0], first)
    np.testing.assert_array_equal(_epoch(again)[0], second)
    assert not np.array_equal(_epoch(build(4))[0], first)


@pytest.mark.parametrize("path", PATHS)
def test_more_groups_than_classes(path):
    labels = np.arange(64) % 2
    ds = group_by_class(_dataset(labels, path), subset_size=2, groups_per_batch=8, seed=0)
    indices, batch_labels = _epoch(ds)
    assert batch_labels.shape[1] == 8
    assert set(np.unique(batch_labels[0])) <= {0, 1}
    np.testing.assert_array_equal(labels[indices], np.repeat(batch_labels[..., None], 2, -1))


@pytest.mark.parametrize("path", PATHS)
def test_small_class_is_sampled_with_replacement(path, caplog):
    # Class 3 has 2 examples (< N=4); class 4 has none (num_classes=5).
    labels = np.concatenate([np.arange(60) % 3, [3, 3]])
    with caplog.at_level(logging.WARNING, logger="keras_metacleaner"):
        ds = group_by_class(
            _dataset(labels, path), 4, 2, seed=0, num_classes=5, labels=labels, in_memory=None
        )
    assert any("fewer than subset_size=4" in r.getMessage() for r in caplog.records)
    seen = []
    for _ in range(6):
        indices, batch_labels = _epoch(ds)
        np.testing.assert_array_equal(labels[indices], np.repeat(batch_labels[..., None], 4, -1))
        seen += [row for row, y in zip(indices.reshape(-1, 4), batch_labels.ravel()) if y == 3]
    assert seen, "the small class never appeared in six epochs"
    for row in seen:
        assert set(row) <= {60, 61}
        assert len(row) == 4


def test_index_path_pads_last_subset_of_a_class_from_that_class():
    labels = np.array([0] * 7 + [1] * 9)
    ds = group_by_class(_dataset(labels, "index"), subset_size=4, groups_per_batch=1, seed=0)
    indices, _ = _epoch(ds)
    # ceil(7/4) + ceil(9/4) = 5 subsets, every example present at least once.
    assert indices.shape[0] == 5
    assert set(indices.ravel()) == set(range(16))


def test_streaming_path_repairs_incomplete_windows():
    # 7 and 9 examples per class: group_by_window flushes windows of 3 and 1.
    labels = np.array([0] * 7 + [1] * 9)
    ds = group_by_class(_dataset(labels, "stream"), subset_size=4, groups_per_batch=1, seed=0)
    indices, batch_labels = _epoch(ds)
    assert indices.shape == (5, 1, 4)
    assert set(indices.ravel()) == set(range(16))
    np.testing.assert_array_equal(labels[indices], np.repeat(batch_labels[..., None], 4, -1))


def test_augment_is_applied_per_image_and_deterministic():
    images = np.random.default_rng(0).uniform(0, 255, (40, 10, 10, 1)).astype("float32")
    labels = (np.arange(40) % 4).astype("int32")
    augment = kmc.data.train_augment(8)

    def build():
        return group_by_class(common.array_dataset(images, labels), 2, 4, seed=5, augment=augment)

    first = [x.numpy() for x, _ in build()]
    assert first[0].shape == (4, 2, 8, 8, 1)
    np.testing.assert_array_equal(
        np.concatenate(first), np.concatenate([x.numpy() for x, _ in build()])
    )


def test_in_memory_materializes_a_plain_dataset():
    images, labels = _data(np.arange(32) % 4)
    plain = tf.data.Dataset.from_tensor_slices((images, labels)).map(lambda x, y: (x, y))
    ds = group_by_class(plain, 4, 2, seed=0, in_memory=True)
    indices, batch_labels = _epoch(ds)
    np.testing.assert_array_equal(np.sort(indices.ravel()), np.arange(32))
    np.testing.assert_array_equal(labels[indices], np.repeat(batch_labels[..., None], 4, -1))


def test_replace_labels_keeps_the_index_path():
    images, labels = _data(np.arange(40) % 4)
    noisy, _ = kmc.data.add_label_noise(labels, 0.5, "symmetric", num_classes=4, seed=0)
    ds = kmc.data.replace_labels(common.array_dataset(images, labels), noisy)
    assert kmc.data.indexed.get_source(ds) is not None
    indices, batch_labels = _epoch(group_by_class(ds, 2, 2, seed=0))
    np.testing.assert_array_equal(noisy[indices], np.repeat(batch_labels[..., None], 2, -1))


def test_labels_that_disagree_with_the_dataset_are_rejected():
    labels = np.arange(40) % 4
    with pytest.raises(ValueError, match="with_labels"):
        group_by_class(_dataset(labels, "index"), 2, 2, labels=(labels + 1) % 4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"subset_size": 0, "groups_per_batch": 2}, "subset_size"),
        ({"subset_size": 2, "groups_per_batch": 2.5}, "groups_per_batch"),
        ({"subset_size": 4, "groups_per_batch": 100}, "fewer than groups_per_batch=100"),
        ({"subset_size": 2, "groups_per_batch": 3, "num_replicas": 2}, "divisible"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        group_by_class(_dataset(np.arange(40) % 4, "index"), **kwargs)


def test_bad_datasets():
    with pytest.raises(ValueError, match="integer labels"):
        group_by_class(tf.data.Dataset.from_tensor_slices((np.zeros((4, 2)), np.zeros(4))), 2, 1)
    with pytest.raises(ValueError, match=r"\(image, label\) pairs"):
        group_by_class(tf.data.Dataset.range(4), 2, 1)
    with pytest.raises(TypeError, match="tf.data.Dataset"):
        group_by_class(np.zeros((4, 2)), 2, 1)


def test_distribution_keeps_subsets_whole():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    labels = np.arange(64) % 4
    with strategy.scope():
        with pytest.raises(ValueError, match="divisible by the number of replicas"):
            group_by_class(_dataset(labels, "index"), 4, 3)
        ds = group_by_class(_dataset(labels, "index"), 4, 4, seed=0)
    batch = next(iter(strategy.experimental_distribute_dataset(ds)))
    for x, y in zip(
        strategy.experimental_local_results(batch[0]), strategy.experimental_local_results(batch[1])
    ):
        assert x.shape == (2, 4, 4, 4, 1)
        np.testing.assert_array_equal(
            labels[x.numpy()[..., 0, 0, 0].astype(int)], np.repeat(y.numpy()[:, None], 4, 1)
        )


@pytest.mark.parametrize("path", PATHS)
def test_metacleaner_model_fits_on_grouped_batches(path):
    images = np.random.default_rng(0).uniform(0, 255, (64, 28, 28, 1)).astype("float32")
    labels = (np.arange(64) % 4).astype("int32")
    source = common.array_dataset(images, labels)
    if path == "stream":
        source = source.map(lambda x, y: (x, y))
    ds = group_by_class(source, subset_size=4, groups_per_batch=2, seed=0)
    model = kmc.MetaCleanerModel(kmc.models.small_cnn((28, 28, 1)), num_classes=4, subset_size=4)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy")
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = model.fit(ds, epochs=1, steps_per_epoch=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert "alpha_mean" in history.history
    assert any(not np.allclose(b, w.numpy()) for b, w in zip(before, model.trainable_weights))


def _expected_batches(labels, subset_size, groups_per_batch):
    """Batches per epoch of the index path: every class cut into ceil(n_c / N) subsets."""
    subsets = sum(-(-count // subset_size) for count in np.bincount(labels) if count)
    return subsets // groups_per_batch


@pytest.mark.parametrize("variant", ["gather", "augment", "materialized"])
def test_index_path_declares_its_batches_per_epoch(variant):
    # 11, 10 and 9 examples, N=4: 3 + 3 + 3 = 9 subsets, K=2: 4 batches, one subset dropped.
    labels = np.repeat(np.arange(3), [11, 10, 9])
    images, labels = _data(labels)
    if variant == "materialized":
        plain = tf.data.Dataset.from_tensor_slices((images, labels)).map(lambda x, y: (x, y))
        ds = group_by_class(plain, 4, 2, seed=0, in_memory=True)
    else:
        augment = (lambda x, y: (x + 0.0, y)) if variant == "augment" else None
        ds = group_by_class(common.array_dataset(images, labels), 4, 2, seed=0, augment=augment)
    expected = _expected_batches(labels, 4, 2)
    assert int(ds.cardinality()) == expected
    # The declared number is what iterating yields, epoch after epoch.
    assert [sum(1 for _ in ds) for _ in range(2)] == [expected, expected]


def _fit_two_epochs(ds, num_classes, subset_size):
    """Fits a tiny MetaCleanerModel on `ds` for 2 epochs; returns (history, Keras' warnings)."""
    channels = ds.element_spec[0].shape[-1]
    model = kmc.MetaCleanerModel(
        kmc.models.small_cnn((8, 8, channels), feature_dim=8),
        num_classes=num_classes,
        subset_size=subset_size,
    )
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(ds, epochs=2, verbose=0)
    return history, [str(w.message) for w in caught]


def test_fit_on_index_path_knows_the_epoch_length():
    images = np.random.default_rng(0).uniform(0, 255, (24, 8, 8, 1)).astype("float32")
    labels = (np.arange(24) % 3).astype("int32")
    ds = group_by_class(common.array_dataset(images, labels), subset_size=2, groups_per_batch=3)
    _, caught = _fit_two_epochs(ds, num_classes=3, subset_size=2)
    assert not [m for m in caught if "ran out of data" in m]


def _load_unsized(kind, root, image_writer):
    """Training data whose size tf.data does not know: image files, or a TFDS builder."""
    if kind == "tfds":
        return kmc.data.load("tfds:cifar10", image_size=8)
    for split, per_class in (("train", (5, 4, 3)), ("test", (1, 1, 1))):
        for c, count in enumerate(per_class):
            for i in range(count):
                image_writer(str(root / split / f"c{c}" / f"{i}.png"), seed=i)
    return kmc.data.load(f"folder:{root}", image_size=8)


@pytest.mark.parametrize("kind", ["folder", "tfds"])
def test_file_and_tfds_sources_declare_their_batches_and_fit_two_epochs(
    kind, tmp_path, image_writer
):
    # folder: the index path over files; tfds: the streaming path.
    with tfds.testing.mock_data(num_examples=16):
        train, _, info = _load_unsized(kind, tmp_path, image_writer)
        ds = group_by_class(train, 2, 2, seed=0, labels=info.train_labels)
        expected = _expected_batches(info.train_labels, 2, 2)
        assert expected >= 2
        assert int(ds.cardinality()) == expected
        assert [sum(1 for _ in ds) for _ in range(2)] == [expected, expected]
        history, caught = _fit_two_epochs(ds, info.num_classes, subset_size=2)
    assert not [m for m in caught if "ran out of data" in m]
    assert len(history.history["loss"]) == 2


def test_streaming_path_declares_its_batches_when_labels_are_given():
    labels = np.repeat(np.arange(3), [11, 10, 9])
    ds = _dataset(labels, "stream")
    declared = group_by_class(ds, 4, 2, seed=0, labels=labels)
    expected = _expected_batches(labels, 4, 2)
    assert int(declared.cardinality()) == expected
    assert [sum(1 for _ in declared) for _ in range(2)] == [expected, expected]
    # Without labels nothing tells the class counts before the input ends.
    assert int(group_by_class(ds, 4, 2, seed=0).cardinality()) == tf.data.UNKNOWN_CARDINALITY
    with pytest.raises(ValueError, match="`labels` has 29 entries but the dataset has 30"):
        group_by_class(ds, 4, 2, labels=labels[:-1])


def test_streaming_path_with_labels_not_the_datasets_own_fails_clearly():
    labels = np.arange(40) % 4  # 10 per class, N=3: 16 subsets, 8 batches of 2
    wrong = np.arange(40) % 20  # 2 per class: 20 subsets, 10 batches promised
    ds = group_by_class(_dataset(labels, "stream"), 3, 2, seed=0, labels=wrong)
    assert int(ds.cardinality()) == 10
    with pytest.raises(tf.errors.InvalidArgumentError, match="fewer than the 10 batches"):
        sum(1 for _ in ds)


def test_file_path_fails_clearly_when_spares_cannot_replace_broken_files(
    tmp_path, image_writer, corrupt_writer
):
    paths = [image_writer(str(tmp_path / "good.png"), size=(8, 8))]
    paths += [corrupt_writer(str(tmp_path / f"bad{i}.jpg")) for i in range(3)]
    errors = kmc.data.indexed.DecodeErrors()
    files = common.files_dataset(paths, np.array([0, 0, 1, 1]), (8, 8, 3), errors)
    # N=1: each draw holds every file once, so two draws give 2 good subsets for 4 batches.
    ds = group_by_class(files, 1, 1, seed=0)
    assert int(ds.cardinality()) == 4
    with pytest.raises(tf.errors.InvalidArgumentError, match="unreadable image files"):
        sum(1 for _ in ds)
    assert errors.count >= 3


# ------------------------------------------------------------- pixel range
@pytest.mark.parametrize("path", ["index", "stream", "materialized"])
def test_float_pixels_in_unit_range_are_refused(path):
    images = np.random.default_rng(0).uniform(0, 1, (24, 4, 4, 1)).astype("float32")
    labels = np.arange(24) % 3
    if path == "index":
        source = common.array_dataset(images, labels)
    else:
        source = tf.data.Dataset.from_tensor_slices((images, labels)).map(lambda x, y: (x, y))
    with pytest.raises(ValueError, match=r"float pixels in \[0, 1\].*multiply them by 255"):
        group_by_class(source, 2, 2, in_memory=True if path == "materialized" else None)
    # Raw pixels pass.
    group_by_class(source.map(lambda x, y: (x * 255, y)), 2, 2)


# ---------------------------------------------------------------- sharding
class FakeContext(tf.distribute.InputContext):
    """What `distribute_datasets_from_function` passes to one input pipeline."""

    def __init__(self, pipelines, pipeline, replicas):
        super().__init__(pipelines, pipeline, replicas)


def _counting_source(labels, decoded):
    """A LoadedData whose images are their index; `decoded` collects every index read."""
    images, labels = _data(labels)
    loaded = kmc.data.from_arrays(images + 2, labels, images[:2] + 2, labels[:2])

    def record(x):
        decoded.extend((x.numpy()[:, 0, 0, 0] - 2).astype(int).tolist())
        return x

    def load_fn(x):
        x = tf.cast(x, tf.float32)
        y = tf.py_function(record, [tf.reshape(x, [-1, *x.shape[-3:]])], tf.float32)
        return tf.reshape(y, tf.shape(x))

    view = dataclasses.replace(loaded.view, load_fn=load_fn)
    return kmc.data.LoadedData(loaded.info, loaded.test, loaded.labels, view=view)


def _steps(ds, batch, subset_size):
    """One epoch as a list of per-batch index arrays [k, N]."""
    return [(x.numpy()[..., 0, 0, 0] - 2).astype(int) for x, _ in ds]


@pytest.mark.parametrize("augment", [None, "augment"])
@pytest.mark.parametrize("pipelines, replicas", [(2, 2), (2, 4), (4, 4), (1, 2)])
def test_input_context_splits_the_plan_before_reading(augment, pipelines, replicas):
    labels = np.repeat(np.arange(4), [13, 11, 9, 7])
    K, N = 8, 2
    augment = None if augment is None else (lambda x, y: (x, y))
    single = _steps(
        group_by_class(_counting_source(labels, []), N, K, seed=5, augment=augment), K, N
    )
    shares, decoded = [], []
    for pipeline in range(pipelines):
        seen = []
        ds = group_by_class(
            _counting_source(labels, seen),
            N,
            K,
            seed=5,
            augment=augment,
            input_context=FakeContext(pipelines, pipeline, replicas),
        )
        k = K // replicas
        assert ds.element_spec[0].shape == (k, N, 4, 4, 1)
        assert int(ds.cardinality()) == len(single) * replicas // pipelines
        assert ds.options().experimental_distribute.auto_shard_policy == (
            tf.data.experimental.AutoShardPolicy.OFF
        )
        shares.append(_steps(ds, k, N))
        decoded.append(seen)
    per_step = replicas // pipelines
    for step, batch in enumerate(single):
        # Step s of the global batch is the pipelines' s-th share, in order: exactly the
        # single-process batch, so every subset is used by exactly one pipeline.
        parts = [np.concatenate(s[step * per_step : (step + 1) * per_step]) for s in shares]
        np.testing.assert_array_equal(np.concatenate(parts), batch)
    for pipeline, seen in enumerate(decoded):
        # Each pipeline decodes exactly its share of the images, nothing else.
        expected = np.concatenate(shares[pipeline]).ravel()
        np.testing.assert_array_equal(np.sort(seen), np.sort(expected))
    assert sum(len(s) for s in decoded) == sum(b.size for b in single)


def test_input_context_is_deterministic_and_redraws_every_epoch():
    labels = np.arange(40) % 4
    ds = group_by_class(_dataset(labels, "index"), 2, 4, seed=1, input_context=FakeContext(2, 1, 2))
    first, second = _epoch(ds)[0], _epoch(ds)[0]
    again = _epoch(
        group_by_class(_dataset(labels, "index"), 2, 4, seed=1, input_context=FakeContext(2, 1, 2))
    )[0]
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, second)


def test_input_context_on_files_decodes_only_its_share(tmp_path, image_writer):
    paths = [
        image_writer(str(tmp_path / f"{i:02d}.png"), size=(4, 4), value=i + 2) for i in range(16)
    ]
    labels = np.arange(16) % 2
    errors = kmc.data.indexed.DecodeErrors()
    files = common.files_source(paths, labels, (4, 4, 3), errors)
    loaded = kmc.data.LoadedData(
        kmc.data.DatasetInfo("f", 2, ["a", "b"], (4, 4, 3), 16, 1, labels),
        files.to_dataset(),
        labels,
        view=files,
    )
    seen = [
        {
            int(v)
            for x, _ in group_by_class(loaded, 2, 4, seed=0, input_context=FakeContext(2, p, 2))
            for v in x.numpy()[..., 0, 0, 0].ravel()
        }
        for p in range(2)
    ]
    single = {
        int(v)
        for x, _ in group_by_class(loaded, 2, 4, seed=0)
        for v in x.numpy()[..., 0, 0, 0].ravel()
    }
    assert seen[0] | seen[1] == single and not seen[0] & seen[1]


def test_input_context_on_a_stream_reads_disjoint_shards():
    labels = np.arange(48) % 3
    stream = _dataset(labels, "stream")
    seen = []
    for pipeline in range(2):
        ds = group_by_class(
            stream, 2, 4, seed=0, labels=labels, input_context=FakeContext(2, pipeline, 2)
        )
        assert ds.element_spec[0].shape[0] == 2
        seen.append({int(v) for x, _ in ds for v in x.numpy()[..., 0, 0, 0].ravel()})
    assert not seen[0] & seen[1]
    assert seen[0] <= set(range(0, 48, 2)) and seen[1] <= set(range(1, 48, 2))


@pytest.mark.parametrize(
    "context, message",
    [((2, 0, 4), "divisible by the number of replicas"), ((2, 2, 2), "pipeline 2 of 2")],
)
def test_input_context_checks(context, message):
    with pytest.raises(ValueError, match=message):
        group_by_class(
            _dataset(np.arange(40) % 4, "index"), 2, 6, input_context=FakeContext(*context)
        )


def test_steps_per_epoch_matches_the_declared_cardinality():
    labels = np.repeat(np.arange(3), [11, 10, 9])
    ds = group_by_class(_dataset(labels, "index"), 4, 2, seed=0)
    assert kmc.data.steps_per_epoch(labels, 4, 2) == int(ds.cardinality()) == 4


def test_distribute_datasets_from_function_gives_each_replica_its_part_of_the_global_batch():
    from test_case import two_replica_strategy

    strategy = two_replica_strategy()
    loaded = _counting_source(np.arange(48) % 4, [])
    K, N = 4, 2
    single = _steps(group_by_class(loaded, N, K, seed=3), K, N)
    distributed = strategy.distribute_datasets_from_function(
        lambda context: group_by_class(loaded, N, K, seed=3, input_context=context)
    )
    steps = 0
    for step, (x, _) in zip(range(len(single)), distributed):
        parts = [
            (r.numpy()[..., 0, 0, 0] - 2).astype(int)
            for r in strategy.experimental_local_results(x)
        ]
        assert [p.shape for p in parts] == [(K // 2, N), (K // 2, N)]
        np.testing.assert_array_equal(np.concatenate(parts), single[step])
        steps += 1
    assert steps == len(single) == kmc.data.steps_per_epoch(loaded.labels, N, K)
