"""Class-grouped batches: K subsets of N same-label images, `[K, N, H, W, C]`.

Two paths build the same batches:

* the index path, for datasets with a random-access view (everything `load`
  returns from in-memory arrays or image files, or any finite dataset with
  `in_memory=True`): each epoch draws a permutation of the example indices,
  cuts every class into subsets of N, shuffles the subsets and only then
  gathers (or reads and decodes) the images. Memory is the label array; the
  images are touched once per use.
* the streaming path, for any other `(image, label)` dataset: a seeded
  shuffle buffer, `group_by_window` keyed by label, repair of the incomplete
  windows it flushes at the end of the input, a shuffle of the subsets, and
  `batch(K, drop_remainder=True)`. Memory is bounded by the buffers
  (`shuffle_buffer` + (N - 1) · C images + the subset buffer).

Both redraw subsets every epoch from a seed that changes deterministically per
iteration, use each example about once per epoch, pad a class's last
incomplete subset (or a class smaller than N) by sampling its members with
replacement, and emit static shapes so a distribution strategy can split the
batch between replicas along K without cutting a subset. On image files the
index path skips a subset holding an unreadable file, counts the file in
`DatasetInfo.decode_errors` and fills the gap from a spare draw of subsets.

Both declare their batches per epoch (`cardinality()`), floor(Σ_c ceil(n_c / N) / K),
so Keras knows an epoch's length instead of printing "Your input ran out of data"
after the first one: the index path always, the streaming path when `labels` are
given for a dataset whose size is known (they are its only source of the class
counts; without them the number of subsets is unknown until the input ends).

Under `strategy.distribute_datasets_from_function`, pass the `InputContext` it
gives: the index path then plans the global epoch and keeps only this input
pipeline's part of every global batch before reading any image, so W workers
decode the data once between them instead of W times.
"""

from __future__ import annotations

import logging

import numpy as np
import tensorflow as tf

from keras_metacleaner.data import indexed

logger = logging.getLogger(__name__)

AUTOTUNE = tf.data.AUTOTUNE
_MAX_INT = 2**31 - 1
_MAX_CONSTANT_BYTES = 1 << 30


def _check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}.")
    return int(value)


def _check_element_spec(dataset: tf.data.Dataset) -> None:
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) != 2:
        raise ValueError(
            f"group_by_class needs a dataset of (image, label) pairs; its element_spec is {spec}."
        )
    label_spec = spec[1]
    if not label_spec.dtype.is_integer or label_spec.shape.rank != 0:
        raise ValueError(
            f"group_by_class needs scalar integer labels (class ids); got label spec {label_spec}."
        )


def _check_replicas(groups_per_batch: int, num_replicas: int | None) -> None:
    if num_replicas is None:
        num_replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if groups_per_batch % num_replicas:
        raise ValueError(
            f"`groups_per_batch`={groups_per_batch} must be divisible by the number of "
            f"replicas ({num_replicas}) so that no subset is split between replicas."
        )


def _log_small_classes(labels: np.ndarray, num_classes: int, subset_size: int) -> None:
    counts = np.bincount(labels, minlength=num_classes)
    small = np.flatnonzero((counts > 0) & (counts < subset_size))
    if small.size:
        logger.warning(
            "%d class(es) have fewer than subset_size=%d examples and are sampled with "
            "replacement: %s.",
            small.size,
            subset_size,
            ", ".join(f"class {c} ({counts[c]})" for c in small[:20]),
        )
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        logger.info("%d class(es) have no training examples: %s.", empty.size, empty[:20].tolist())


def _epoch_seeds(seed: int) -> tf.data.Dataset:
    """One int64 per iteration, different every epoch, fixed by `seed`."""
    return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)


def _batches_per_epoch(labels: np.ndarray, subset_size: int, groups_per_batch: int) -> int:
    """floor(Σ_c ceil(n_c / N) / K): the batches of one epoch of either path.

    Raises:
        ValueError: when the data cannot fill a single batch.
    """
    total = int((-(-np.bincount(labels) // subset_size)).sum())
    if total < groups_per_batch:
        raise ValueError(
            f"group_by_class: the data yields only {total} subsets of {subset_size} per epoch, "
            f"fewer than groups_per_batch={groups_per_batch}; lower groups_per_batch."
        )
    return total // groups_per_batch


def _apply_augment(augment, image, label, seed):
    if getattr(augment, "accepts_seed", False):
        return augment(image, label, seed=seed)
    return augment(image, label)


def _materialize(dataset: tf.data.Dataset) -> indexed.IndexedSource:
    cardinality = int(dataset.cardinality())
    if cardinality == tf.data.INFINITE_CARDINALITY:
        raise ValueError("in_memory=True needs a finite dataset; this one is infinite.")
    images, labels = [], []
    for x, y in dataset.batch(1024).as_numpy_iterator():
        images.append(x)
        labels.append(y)
    if not labels:
        raise ValueError("group_by_class: the dataset is empty.")
    images = np.concatenate(images)
    logger.info(
        "group_by_class: holding %d examples (%.1f MB) in memory.",
        len(images),
        images.nbytes / 2**20,
    )
    return indexed.IndexedSource(
        elements=images,
        labels=np.concatenate(labels).astype(np.int32),
        load_fn=lambda x: tf.cast(x, tf.float32),
    )


def _check_pixel_range(images, where: str) -> None:
    from keras_metacleaner.data.sources.common import looks_unit_scaled

    if looks_unit_scaled(images):
        raise ValueError(
            f"group_by_class: {where} holds float pixels in [0, 1], but images must be raw "
            "pixels in [0, 255] (every backbone normalises them itself, and would see near-black "
            "images and train at chance); multiply them by 255."
        )


def _peek_pixels(dataset: tf.data.Dataset, count: int = 16) -> None:
    """Refuses a stream whose first images are float pixels in [0, 1]."""
    if not dataset.element_spec[0].dtype.is_floating:
        return
    try:
        first = [x for x, _ in dataset.take(count).as_numpy_iterator()]
    except tf.errors.OpError:  # left to the pipeline to report when it runs
        return
    if first:
        _check_pixel_range(np.stack(first), "the dataset")


def _check_context(input_context, groups_per_batch: int) -> tuple[int, int, int]:
    """(pipelines, this pipeline's id, per-replica K) of a `tf.distribute.InputContext`."""
    pipelines = int(input_context.num_input_pipelines)
    pipeline = int(input_context.input_pipeline_id)
    replicas = int(input_context.num_replicas_in_sync)
    if pipelines < 1 or not 0 <= pipeline < pipelines or replicas % pipelines:
        raise ValueError(
            f"input_context: pipeline {pipeline} of {pipelines} for {replicas} replicas; expected "
            "0 <= id < pipelines and replicas divisible by pipelines."
        )
    if groups_per_batch % replicas:
        raise ValueError(
            f"`groups_per_batch`={groups_per_batch} must be divisible by the number of "
            f"replicas ({replicas}) so that no subset is split between replicas."
        )
    return pipelines, pipeline, input_context.get_per_replica_batch_size(groups_per_batch)


def steps_per_epoch(labels, subset_size: int, groups_per_batch: int) -> int:
    """Global batches of one epoch of `group_by_class`: floor(Σ_c ceil(n_c / N) / K).

    With an `input_context` each pipeline yields `steps * replicas / pipelines`
    per-replica batches, so a distributed epoch is the same number of steps.

    Args:
        labels: the training labels (`LoadedData.labels`).
        subset_size: N.
        groups_per_batch: K, the global number of subsets per step.

    Example:

    >>> steps_per_epoch(np.arange(40) % 4, subset_size=3, groups_per_batch=2)
    8
    """
    labels = np.asarray(labels, np.int64)
    return _batches_per_epoch(
        labels,
        _check_positive_int(subset_size, "subset_size"),
        _check_positive_int(groups_per_batch, "groups_per_batch"),
    )


def group_by_class(
    source,
    subset_size: int,
    groups_per_batch: int,
    seed: int = 0,
    num_classes: int | None = None,
    augment=None,
    labels=None,
    in_memory: bool | None = None,
    shuffle_buffer: int = 10_000,
    subset_shuffle_buffer: int | None = None,
    num_replicas: int | None = None,
    num_parallel_calls: int = AUTOTUNE,
    input_context: tf.distribute.InputContext | None = None,
) -> tf.data.Dataset:
    """Batches K subsets of N images that share a label.

    Args:
        source: a `LoadedData` (from `load`; its view gives the fast index
            path, its labels are used), or a finite `tf.data.Dataset` of
            `(image, label)`, unbatched (the streaming path, unless it came
            from `LoadedData.train` with its view still attached).
        subset_size: N, images per subset.
        groups_per_batch: K, subsets per global batch. May exceed the number
            of classes (classes then repeat within a batch). Must be
            divisible by the number of replicas.
        seed: seed of every draw; the same seed gives the same sequence of
            epochs.
        num_classes: number of classes (inferred from the labels if omitted).
        augment: optional per-image transform `(image, label) -> (image,
            label)`, e.g. `preprocessing.train_augment(...)`; applied to each
            image after it is drawn, with a per-image seed when it accepts one.
        labels: optional labels in dataset order (default: a `LoadedData`'s
            own). Checked against the source's labels when it has a view;
            on the streaming path they give the number of batches per epoch
            (declared when the dataset's size is known, which must then
            equal their count).
        in_memory: `None` uses the index path when the source has a
            random-access view; `True` also copies any other finite dataset
            into memory once to use it (pass it un-augmented: the copy is
            made once); `False` forces the streaming path.
        shuffle_buffer: streaming path: examples in the shuffle buffer.
        subset_shuffle_buffer: streaming path: subsets in the buffer that
            mixes classes before batching (default `4 * K`).
        num_replicas: replicas to check K against (default: current strategy).
        num_parallel_calls: parallelism of the image maps.
        input_context: the `tf.distribute.InputContext` that
            `strategy.distribute_datasets_from_function` passes. On the index
            path the epoch's global subset plan is cut by input pipeline
            before any image is read: step s's global batch is split into
            `num_input_pipelines` consecutive parts and this pipeline keeps
            part `input_pipeline_id`, so every subset is used by exactly one
            pipeline, the union is the single-process plan (step by step),
            and each pipeline decodes only its share. Batches are per replica:
            `input_context.get_per_replica_batch_size(K)` subsets. On the
            streaming path each pipeline reads a disjoint shard of the
            examples instead (`Dataset.shard`), which is not the
            single-process plan.

    Returns:
        A dataset of `(x float32 [k, N, H, W, C], y int32 [k])`, k = K, or the
        per-replica share with an `input_context`; iterating it again (or
        `.repeat()`) draws new subsets. Its `cardinality()` is the batches
        per epoch, `steps_per_epoch(...)` (times replicas / pipelines with an
        `input_context`), on the index path and on the streaming path with
        `labels`; unknown otherwise.

    Raises:
        ValueError: bad arguments, labels out of range, or float pixels in
            [0, 1] (images must be raw pixels in [0, 255]).

    Example:

    >>> import numpy as np
    >>> x = np.zeros((40, 8, 8, 1), "float32"); y = np.arange(40) % 4
    >>> ds = tf.data.Dataset.from_tensor_slices((x, y))
    >>> xb, yb = next(iter(group_by_class(ds, subset_size=3, groups_per_batch=2)))
    >>> xb.shape, yb.shape
    (TensorShape([2, 3, 8, 8, 1]), TensorShape([2]))
    """
    from keras_metacleaner.data.loaded import LoadedData

    subset_size = _check_positive_int(subset_size, "subset_size")
    groups_per_batch = _check_positive_int(groups_per_batch, "groups_per_batch")
    shard = None
    if input_context is not None:
        shard = _check_context(input_context, groups_per_batch)
    else:
        _check_replicas(groups_per_batch, num_replicas)
    view = None
    if isinstance(source, LoadedData):
        view = source.view
        dataset = source.train if view is None else None
        if labels is None:
            labels = source.labels
    elif isinstance(source, tf.data.Dataset):
        dataset = source
        _check_element_spec(dataset)
        view = indexed.get_source(dataset)
    else:
        raise TypeError(
            f"`source` must be a LoadedData or a tf.data.Dataset, got {type(source).__name__}."
        )
    if in_memory is False and view is not None:
        dataset = dataset if dataset is not None else view.to_dataset()
        view = None
    if view is not None and not view.is_files and view.elements.nbytes > _MAX_CONSTANT_BYTES:
        # The index path embeds the arrays in the graph, which caps them at 2 GB.
        logger.info(
            "group_by_class: %.1f GB of in-memory images is too large for the index path; "
            "streaming instead.",
            view.elements.nbytes / 2**30,
        )
        dataset = dataset if dataset is not None else view.to_dataset()
        view = None
    if view is None and in_memory:
        view = _materialize(dataset)
    if view is not None and not view.is_files:
        _check_pixel_range(view.elements, "the source")
    elif view is None:
        _peek_pixels(dataset)
    if labels is not None:
        labels = np.asarray(labels)
        if view is not None and labels.shape != view.labels.shape:
            raise ValueError(
                f"`labels` has {labels.shape[0]} entries but the dataset has {view.size} elements."
            )
        if view is not None and not np.array_equal(labels, view.labels):
            differ = int(np.sum(labels != view.labels))
            raise ValueError(
                f"`labels` differ from the dataset's own labels at {differ} positions; swap "
                "them in with LoadedData.with_labels(labels) first."
            )
    elif view is not None:
        labels = view.labels
    if labels is not None:
        if labels.size and (not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0):
            raise ValueError("`labels` must be non-negative integer class ids.")
        if num_classes is None:
            num_classes = int(labels.max()) + 1 if labels.size else 0
        elif labels.size and labels.max() >= num_classes:
            raise ValueError(f"`labels` contain {labels.max()} >= num_classes={num_classes}.")
        _log_small_classes(labels.astype(np.int64), num_classes, subset_size)

    if view is not None:
        ds = _index_path(
            view, subset_size, groups_per_batch, seed, augment, num_parallel_calls, shard
        )
    else:
        ds = _streaming(
            dataset,
            labels,
            subset_size,
            groups_per_batch,
            seed,
            augment,
            shuffle_buffer,
            subset_shuffle_buffer,
            num_parallel_calls,
            shard,
        )
    if input_context is not None:
        # This function already gives each pipeline its own share.
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        ds = ds.with_options(options)
    return ds


def _streaming(
    dataset,
    labels,
    subset_size,
    groups_per_batch,
    seed,
    augment,
    shuffle_buffer,
    subset_shuffle_buffer,
    num_parallel_calls,
    shard,
):
    batch = groups_per_batch
    subset_buffer = subset_shuffle_buffer or 4 * groups_per_batch
    batches = None
    size = int(dataset.cardinality())
    if labels is not None and size >= 0 and size != labels.size:
        raise ValueError(f"`labels` has {labels.size} entries but the dataset has {size} elements.")
    if shard is not None:
        pipelines, pipeline, batch = shard
        dataset = dataset.shard(pipelines, pipeline)
        labels = None if labels is None else labels[pipeline::pipelines]
        size = int(dataset.cardinality())
    if labels is not None and size >= 0:
        # Only a dataset of known size can vouch for the labels' length; the
        # class counts, and with them the batches per epoch, then follow.
        batches = _batches_per_epoch(labels.astype(np.int64), subset_size, batch)
    return _streaming_path(
        dataset,
        subset_size,
        batch,
        seed,
        augment,
        shuffle_buffer,
        subset_buffer,
        num_parallel_calls,
        batches,
    )


# ---------------------------------------------------------------- index path
def _subset_plan(labels: np.ndarray, subset_size: int, groups_per_batch: int, seed: int):
    """Returns `plan(epoch_seed, draw=0) -> int64 [B * K, N]` example indices, and B.

    Every class is cut into ceil(count / N) subsets of its examples in a
    random order; the last one is topped up with random members of the same
    class. The subsets are shuffled and the first B·K of them kept. Each
    `draw` of one epoch seed is an independent such cut.
    """
    n = labels.size
    batches = _batches_per_epoch(labels, subset_size, groups_per_batch)
    num_classes = int(labels.max()) + 1
    counts = np.bincount(labels, minlength=num_classes).astype(np.int64)
    groups = -(-counts // subset_size)
    total = int(groups.sum())
    group_class = np.repeat(np.arange(num_classes), groups)
    first_group = np.cumsum(groups) - groups
    # Per subset: where its members start in its class, the class's size and
    # where the class starts in the label-sorted order; [G, 1] each.
    offset_t = tf.constant(((np.arange(total) - first_group[group_class]) * subset_size)[:, None])
    count_t = tf.constant(counts[group_class][:, None])
    start_t = tf.constant((np.cumsum(counts) - counts)[group_class][:, None])
    labels_t = tf.constant(labels, tf.int32)
    members = tf.range(subset_size, dtype=tf.int64)[None, :]
    kept = batches * groups_per_batch

    def plan(epoch_seed, draw=0):
        # `draw` > 0: a spare, independent draw of the same epoch (the file path's reserve).
        seeds = [
            tf.stack([epoch_seed, tf.constant(seed + k + 3 * draw, tf.int64)]) for k in range(3)
        ]
        permutation = tf.random.experimental.stateless_shuffle(
            tf.range(n, dtype=tf.int64), seed=seeds[0]
        )
        # Stable sort by label: classes become contiguous, each in random order.
        by_class = tf.gather(permutation, tf.argsort(tf.gather(labels_t, permutation), stable=True))
        position = offset_t + members
        draws = tf.random.stateless_uniform(
            tf.shape(position), seeds[1], maxval=_MAX_INT, dtype=tf.int64
        )
        position = tf.where(position < count_t, position, draws % count_t)
        order = tf.random.experimental.stateless_shuffle(tf.range(total, dtype=tf.int64), seeds[2])
        return tf.gather(by_class, tf.gather(start_t + position, order[:kept]))

    return plan, batches


def _index_path(
    source, subset_size, groups_per_batch, seed, augment, num_parallel_calls, shard=None
):
    plan, batches = _subset_plan(
        source.labels.astype(np.int64), subset_size, groups_per_batch, seed
    )
    batch = groups_per_batch
    if shard is not None:
        # Cut every global batch of the plan into `pipelines` consecutive parts and keep
        # this pipeline's: disjoint, together the single-process plan, nothing read twice.
        pipelines, pipeline, batch = shard
        share = groups_per_batch // pipelines
        batches = batches * (share // batch)
        full_plan = plan

        def plan(epoch_seed, draw=0):
            rows = tf.reshape(full_plan(epoch_seed, draw), [-1, pipelines, share, subset_size])
            return tf.reshape(rows[:, pipeline], [-1, subset_size])

    elements = tf.constant(source.elements)
    labels_t = tf.constant(source.labels, tf.int32)
    epochs = _epoch_seeds(seed)

    def load_one(index, position, epoch_seed):
        image = source.load_fn(tf.gather(elements, index))
        label = tf.gather(labels_t, index)
        if augment is not None:
            image, label = _apply_augment(augment, image, label, tf.stack([epoch_seed, position]))
        return image, label

    if not source.is_files and augment is None:
        # Whole batches at once: one gather of k·N images instead of k·N maps.
        def gather_batch(indices):
            images = source.load_fn(tf.gather(elements, tf.reshape(indices, [-1])))
            images = tf.reshape(images, [batch, subset_size, *images.shape[1:]])
            return images, tf.gather(labels_t, indices[:, 0])

        ds = epochs.flat_map(lambda s: tf.data.Dataset.from_tensor_slices(plan(s)))
        ds = ds.batch(batch, drop_remainder=True)
        ds = ds.map(gather_batch, num_parallel_calls=num_parallel_calls)
        return ds.apply(tf.data.experimental.assert_cardinality(batches)).prefetch(AUTOTUNE)

    if not source.is_files:

        def images(epoch_seed):
            indices = tf.reshape(plan(epoch_seed), [-1])
            count = tf.size(indices, out_type=tf.int64)
            # The epoch seed rides along with each index: a parallel map
            # outside flat_map is cheaper than one inside it.
            return tf.data.Dataset.from_tensor_slices(
                (indices, tf.range(count, dtype=tf.int64), tf.fill([count], epoch_seed))
            )

        def to_subsets(x, y):
            x = tf.reshape(x, [batch, subset_size, *x.shape[1:]])
            return x, y[::subset_size]

        # One batch of k·N images, reshaped: cheaper than batch(N) then batch(k).
        ds = epochs.flat_map(images).map(load_one, num_parallel_calls=num_parallel_calls)
        ds = ds.batch(batch * subset_size, drop_remainder=True)
        ds = ds.map(to_subsets)
        return ds.apply(tf.data.experimental.assert_cardinality(batches)).prefetch(AUTOTUNE)

    # Files can fail to decode, and a graph cannot catch that: decode whole
    # subsets in one map, let `ignore_errors` drop a subset that failed, and
    # find the culprits in Python, which only runs when a subset went missing.
    paths = source.elements

    def epoch_rows(epoch_seed):
        # A second, spare draw after the epoch's own: it replaces the subsets
        # dropped for unreadable files, so the epoch still has its full batches.
        return tf.concat([plan(epoch_seed), plan(epoch_seed, draw=1)], axis=0)

    def subsets(epoch_seed):
        indices = epoch_rows(epoch_seed)
        count = tf.shape(indices, out_type=tf.int64)[0]
        return tf.data.Dataset.from_tensor_slices(
            (indices, tf.range(count, dtype=tf.int64), tf.fill([count], epoch_seed))
        )

    def load_subset(indices, position, epoch_seed):
        images = [
            load_one(indices[m], position * subset_size + m, epoch_seed)[0]
            for m in range(subset_size)
        ]
        label = tf.gather(labels_t, indices[0])
        return position, epoch_seed, (tf.stack(images), label)

    def report(start, stop, epoch_seed):
        if source.errors is None:
            return
        # Rebuild the epoch's rows (eagerly) to name every file of the missing subsets.
        rows = epoch_rows(tf.constant(epoch_seed, tf.int64)).numpy()[start:stop]
        for row in rows:
            bad = [paths[i] for i in dict.fromkeys(row.tolist()) if not _readable(paths[i])]
            source.errors.record(bad or [""])

    ds = epochs.flat_map(subsets).map(load_subset, num_parallel_calls=num_parallel_calls)
    ds = indexed.skip_unreadable(ds, report)
    ds = ds.batch(batch, drop_remainder=True)
    shortfall = (
        f"group_by_class: fewer than {batches} batches in this epoch: more subsets held "
        "unreadable image files than a spare draw could replace (see "
        "DatasetInfo.skipped_files); remove or repair the broken files."
    )
    return indexed.exact_length(ds, batches, shortfall).prefetch(AUTOTUNE)


def _readable(path: bytes) -> bool:
    try:
        tf.io.decode_image(tf.io.read_file(path), expand_animations=False)
    except (tf.errors.OpError, ValueError):
        return False
    return True


# ------------------------------------------------------------ streaming path
def _repair_subsets(ds: tf.data.Dataset, subset_size: int, seed: int) -> tf.data.Dataset:
    """Pads windows shorter than N by resampling their members; labels to `[]`.

    `group_by_window` flushes every incomplete window at the end of the
    input; a class with fewer than N examples only ever gives such a window.
    """

    def repair(window, draw):
        x, y = window
        count = tf.shape(y, out_type=tf.int64)[0]
        extra = (
            tf.random.stateless_uniform(
                [subset_size],
                tf.stack([draw, tf.constant(seed, tf.int64)]),
                maxval=_MAX_INT,
                dtype=tf.int64,
            )
            % count
        )
        index = tf.where(
            tf.range(subset_size, dtype=tf.int64) < count,
            tf.range(subset_size, dtype=tf.int64),
            extra,
        )
        x = tf.gather(x, index)
        x.set_shape([subset_size, *x.shape[1:]])
        return x, tf.cast(y[0], tf.int32)

    draws = tf.data.Dataset.random(seed=seed + 7, rerandomize_each_iteration=True)
    return tf.data.Dataset.zip((ds, draws)).map(repair)


def _streaming_path(
    dataset,
    subset_size,
    groups_per_batch,
    seed,
    augment,
    shuffle_buffer,
    subset_buffer,
    num_parallel_calls,
    batches=None,
):
    ds = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if augment is not None:
        draws = tf.data.Dataset.random(seed=seed + 1, rerandomize_each_iteration=True)

        def apply(element, draw):
            image, label = element
            return _apply_augment(
                augment, image, label, tf.stack([draw, tf.constant(seed, tf.int64)])
            )

        ds = tf.data.Dataset.zip((ds, draws)).map(apply, num_parallel_calls=num_parallel_calls)
    ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), y))
    ds = ds.group_by_window(
        key_func=lambda x, y: tf.cast(y, tf.int64),
        reduce_func=lambda key, window: window.batch(subset_size),
        window_size=subset_size,
    )
    ds = _repair_subsets(ds, subset_size, seed)
    ds = ds.shuffle(subset_buffer, seed=seed + 2, reshuffle_each_iteration=True)
    ds = ds.batch(groups_per_batch, drop_remainder=True)
    if batches is not None:
        # group_by_window emits ceil(n_c / N) windows per class whatever the
        # order, so the count is exact when `labels` are the dataset's own.
        shortfall = (
            f"group_by_class: the dataset gave fewer than the {batches} batches its `labels` "
            "promise; pass the dataset's own labels in dataset order (swap new ones in with "
            "keras_metacleaner.data.replace_labels)."
        )
        ds = indexed.exact_length(ds, batches, shortfall)
    return ds.prefetch(AUTOTUNE)
