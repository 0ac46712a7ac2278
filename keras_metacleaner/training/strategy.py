"""Distribution strategy from a name and TF_CONFIG, chief detection, logical CPUs.

TensorFlow is imported inside the functions that need it, so a tool can check
`--strategy` and TF_CONFIG before the framework starts.
"""

from __future__ import annotations

import json
import os

STRATEGIES = ("default", "mirrored", "multi_worker")


def tf_config() -> dict:
    """The parsed `TF_CONFIG` environment variable (`{}` when unset).

    Returns:
        dict with `cluster` and `task` when set.

    Example:

    >>> os.environ.pop("TF_CONFIG", None) and None
    >>> tf_config()
    {}
    """
    raw = os.environ.get("TF_CONFIG", "")
    if not raw.strip():
        return {}
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON ({e}): {raw!r}") from None
    if not isinstance(config, dict):
        raise ValueError(f"TF_CONFIG must be a JSON object, got {raw!r}.")
    return config


def validate_tf_config(config: dict) -> None:
    """Checks that TF_CONFIG describes a cluster and this process's task in it.

    Args:
        config: the parsed TF_CONFIG.

    Raises:
        ValueError naming what is missing.

    Example:

    >>> validate_tf_config({"cluster": {"worker": ["127.0.0.1:1"]},
    ...                     "task": {"type": "worker", "index": 0}})
    """
    cluster = config.get("cluster")
    task = config.get("task")
    if not cluster or not isinstance(cluster, dict):
        raise ValueError(
            "--strategy=multi_worker needs TF_CONFIG with a 'cluster', e.g. "
            '{"cluster": {"worker": ["host1:port", "host2:port"]}, '
            '"task": {"type": "worker", "index": 0}}; got TF_CONFIG=' + json.dumps(config)
        )
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise ValueError(
            "TF_CONFIG needs a 'task' with 'type' and 'index'; got " + json.dumps(config)
        )
    members = cluster.get(task["type"])
    if not members or not 0 <= int(task["index"]) < len(members):
        raise ValueError(f"TF_CONFIG task {task} is not in its cluster {cluster}.")


def is_chief(config: dict | None = None) -> bool:
    """Whether this process is the chief: it writes logs, results and exports.

    The chief is the task of type `chief`, or worker 0 when the cluster has no
    `chief` (the MultiWorkerMirroredStrategy convention). Without TF_CONFIG the
    single process is the chief.

    Args:
        config: parsed TF_CONFIG; read from the environment when None.

    Returns:
        bool.

    Example:

    >>> is_chief({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}})
    False
    """
    config = tf_config() if config is None else config
    task = config.get("task") or {}
    cluster = config.get("cluster") or {}
    if not task:
        return True
    if task.get("type") == "chief":
        return True
    return (
        task.get("type") == "worker" and int(task.get("index", 0)) == 0 and "chief" not in cluster
    )


def task_id(config: dict | None = None) -> str:
    """A short name of this process's task, e.g. `"worker_1"` (`"chief"` alone).

    Args:
        config: parsed TF_CONFIG; read from the environment when None.

    Returns:
        str.

    Example:

    >>> task_id({})
    'chief'
    """
    config = tf_config() if config is None else config
    task = config.get("task") or {}
    if not task:
        return "chief"
    return f"{task.get('type')}_{task.get('index')}"


def split_cpu(num_devices: int) -> None:
    """Splits the first physical CPU into `num_devices` logical devices.

    Lets `MirroredStrategy` run several replicas on a machine without GPUs
    (tests, laptops). Must run before TensorFlow initialises its devices.

    Args:
        num_devices: int >= 1; 1 leaves the CPU as it is.

    Raises:
        RuntimeError if TensorFlow has already initialised its devices with a
        different configuration.

    Example:

    >>> split_cpu(1)
    """
    if num_devices <= 1:
        return
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    current = tf.config.get_logical_device_configuration(cpus[0])
    if current and len(current) == num_devices:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)]
        )
    except RuntimeError as e:
        raise RuntimeError(
            f"Cannot split the CPU into {num_devices} logical devices: TensorFlow is already "
            "initialised. Split it before the first TensorFlow operation."
        ) from e


def get_strategy(name: str):
    """A `tf.distribute.Strategy` by name.

    Args:
        name: `"default"` (one device), `"mirrored"` (all local GPUs, or all
            logical CPUs when there is no GPU) or `"multi_worker"`
            (`MultiWorkerMirroredStrategy`, cluster from TF_CONFIG).

    Returns:
        The strategy. Create it before any other TensorFlow work: multi-worker
        collectives must be configured first.

    Example:

    >>> get_strategy("default").num_replicas_in_sync
    1
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; expected one of {STRATEGIES}.")
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = None
        if not tf.config.list_logical_devices("GPU"):
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    validate_tf_config(tf_config())
    return tf.distribute.MultiWorkerMirroredStrategy()
