"""Statistics over the global batch, the same on one device and under a strategy."""

from __future__ import annotations

import tensorflow as tf
from keras import ops


def global_mean(values):
    """Mean of `values` over the global batch: summed across replicas under a strategy.

    A statistic that steers training (label_posterior's clean share, the
    normalisation of subset weights) must not depend on how the batch is
    split, or N replicas would not train like one device.

    Args:
        values: a float tensor of any shape, this replica's share of the batch.

    Returns:
        A scalar: the mean over every replica's values (this replica's alone
        outside a strategy or with one replica).

    Example:

    >>> float(global_mean(ops.convert_to_tensor([1.0, 2.0, 6.0])))
    3.0
    """
    total, count = ops.sum(values), ops.cast(ops.size(values), values.dtype)
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        total, count = context.all_reduce(tf.distribute.ReduceOp.SUM, [total, count])
    return total / count
