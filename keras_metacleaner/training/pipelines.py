"""The tf.data pipelines of a run: grouped subsets, single images, indexed images, test.

Which one a method trains on is its registry entry's `inputs`
(`training.methods`). Pipelines are unbatched-in, batched-out, deterministic
for a seed, and repeat-free (the stages repeat them), except the distributed
grouped input (`distributed_grouped_pipeline`), which repeats inside each
input pipeline.

Under a strategy with several replicas or workers, the grouped input is built
per input pipeline with `strategy.distribute_datasets_from_function` and
`data.group_by_class(..., input_context=...)`: each worker plans the epoch's
subsets and decodes only its own share. The single-image inputs (baseline,
peers, fine-tuning) keep `Dataset.shard`-by-element auto-sharding
(`distribute_options`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from keras_metacleaner import data
from keras_metacleaner.training.config import TrainConfig
from keras_metacleaner.training.preparation import Split


def _image_bytes(shape) -> int:
    return int(np.prod([d or 224 for d in shape])) * 4


def shuffle_buffer(size: int, shape) -> int:
    """Enough to mix well, bounded to ~256 MB of decoded images."""
    return max(1, min(size, max(1024, 256 * 2**20 // _image_bytes(shape))))


def map_images(dataset: tf.data.Dataset, fn) -> tf.data.Dataset:
    """Applies `fn` to the image of every `(image, label)` element."""
    return dataset.map(lambda x, y: (fn(x), y), num_parallel_calls=tf.data.AUTOTUNE)


def distribute_options(dataset: tf.data.Dataset, multi_worker: bool) -> tf.data.Dataset:
    """Deterministic order; shard by element (sources are in memory or generators)."""
    options = tf.data.Options()
    options.deterministic = True
    if multi_worker:
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
    return dataset.with_options(options)


def augment_fn(config: TrainConfig):
    """The training augmentation of `config`, or None."""
    if not config.augment:
        return None
    return data.preprocessing.train_augment(config.image_size or None)


def test_images(config: TrainConfig, dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Evaluation-time transform (centre crop when training augments)."""
    if config.augment and config.image_size:
        return map_images(dataset, data.preprocessing.test_transform(config.image_size))
    return dataset


def test_pipeline(config: TrainConfig, dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Batched evaluation data."""
    return test_images(config, dataset).batch(config.batch_size).prefetch(tf.data.AUTOTUNE)


def grouped_pipeline(
    config: TrainConfig,
    train: Split,
    num_classes: int,
    input_context: tf.distribute.InputContext | None = None,
) -> tf.data.Dataset:
    """Batches of K subsets of N same-label images, `([K, N, H, W, C], [K])`.

    With `input_context` (one replica's input of a multi-replica run), this
    replica's shard of them.
    """
    return data.group_by_class(
        train.loaded if train.loaded is not None else train.dataset,
        subset_size=config.subset_size,
        groups_per_batch=config.batch_size // config.subset_size,
        seed=config.seed,
        num_classes=num_classes,
        augment=augment_fn(config),
        labels=train.labels,
        # Without a context: checked against the strategy by `stages.check_replicas`.
        num_replicas=1,
        input_context=input_context,
    )


@dataclasses.dataclass
class DistributedInput:
    """The grouped training input of a multi-replica run (`distributed_grouped_pipeline`).

    Attributes:
        distributed: the repeated `tf.distribute.DistributedDataset` that `fit` takes as it is.
        local: this process's first input pipeline, unrepeated: per-replica
            batches of its own subsets (for the probe batch; never for `fit`).
    """

    distributed: tf.distribute.DistributedDataset
    local: tf.data.Dataset

    def spec_batch(self) -> tf.data.Dataset:
        """One all-zero batch of `local`'s element spec: builds a model without reading images."""

        def zeros(spec):
            return tf.zeros([d if d is not None else 1 for d in spec.shape], spec.dtype)

        return tf.data.Dataset.from_tensors(tf.nest.map_structure(zeros, self.local.element_spec))


def distributes_grouped(config: TrainConfig, strategy: tf.distribute.Strategy) -> bool:
    """Whether `config`'s grouped input is built per input pipeline of `strategy`.

    True for grouped methods under `multi_worker`, or any strategy with more
    than one replica; a single device keeps the plain `grouped_pipeline`.

    Example:

    >>> distributes_grouped(TrainConfig("x", "/tmp/r"), tf.distribute.get_strategy())
    False
    """
    return config.method_spec.inputs == "grouped" and (
        config.strategy == "multi_worker" or strategy.num_replicas_in_sync > 1
    )


def distributed_grouped_pipeline(
    config: TrainConfig, train: Split, num_classes: int, strategy: tf.distribute.Strategy
) -> DistributedInput:
    """Grouped batches whose every input pipeline plans the epoch and decodes only its share.

    `strategy.distribute_datasets_from_function` calls `group_by_class` with
    each pipeline's `InputContext`: the global subset plan is cut by pipeline
    before any image is read (every subset of an epoch goes to exactly one
    worker) and each replica gets `K / replicas` subsets a step. The repeat is
    inside the function, so `fit(steps_per_epoch=...)` runs one iterator
    through all epochs.

    Args:
        config: the run's configuration (grouped method).
        train: the training split.
        num_classes: number of classes.
        strategy: the run's strategy.

    Returns:
        A `DistributedInput`.

    Example:

    >>> train_input = distributed_grouped_pipeline(config, train, 10, strategy)  # doctest: +SKIP
    >>> model.fit(train_input.distributed, steps_per_epoch=steps)  # doctest: +SKIP
    """
    local = []

    def dataset_fn(input_context: tf.distribute.InputContext) -> tf.data.Dataset:
        dataset = grouped_pipeline(config, train, num_classes, input_context)
        local.append(dataset)
        options = tf.data.Options()
        options.deterministic = True
        return dataset.repeat().prefetch(tf.data.AUTOTUNE).with_options(options)

    distributed = strategy.distribute_datasets_from_function(dataset_fn)
    return DistributedInput(distributed, local[0])


def single_pipeline(
    config: TrainConfig, dataset: tf.data.Dataset, size: int, shape, seed: int
) -> tf.data.Dataset:
    """Shuffled, augmented batches of single images, `([B, H, W, C], [B])`."""
    dataset = dataset.shuffle(shuffle_buffer(size, shape), seed=seed, reshuffle_each_iteration=True)
    augment = augment_fn(config)
    if augment is not None:
        dataset = map_images(dataset, augment)
    return dataset.batch(config.batch_size, drop_remainder=True)


def indexed_pipeline(config: TrainConfig, train: Split, shape, seed: int) -> tf.data.Dataset:
    """Single images with each example's position, `({"images", "index"}, y)` (ELR)."""
    indexed = train.dataset.enumerate().map(
        lambda i, element: ((element[0], tf.cast(i, tf.int32)), element[1])
    )
    indexed = indexed.shuffle(
        shuffle_buffer(len(train), shape), seed=seed, reshuffle_each_iteration=True
    )
    augment = augment_fn(config)

    def pack(inputs, label):
        image, index = inputs
        if augment is not None:
            image = augment(image)
        return {"images": image, "index": index}, label

    return indexed.map(pack, num_parallel_calls=tf.data.AUTOTUNE).batch(
        config.batch_size, drop_remainder=True
    )


def training_pipeline(config: TrainConfig, train: Split, num_classes: int, shape):
    """The first stage's batches for `config.method` (its registry entry's `inputs`)."""
    inputs = config.method_spec.inputs
    if inputs == "grouped":
        return grouped_pipeline(config, train, num_classes)
    if inputs == "indexed":
        return indexed_pipeline(config, train, shape, config.seed)
    return single_pipeline(config, train.dataset, len(train), shape, config.seed)
