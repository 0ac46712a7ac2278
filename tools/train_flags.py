"""The training flags, generated from `TrainConfig`'s field metadata: one definition.

`define_flags()` defines one absl flag per `TrainConfig` setting (name, type,
default, help and choices come from `keras_metacleaner.training.config`);
`config_from_flags()` turns the parsed flags into a validated `TrainConfig`
or raises `UsageError` (the tools exit with code 2). Neither imports
TensorFlow, so bad flags are refused in a fraction of a second and before
anything is written. Used by `tools/train.py` and `tools/tune.py`.
"""

from __future__ import annotations

import os
import socket

from absl import flags
from cli import UsageError
from cli import flags_parser as _flags_parser

from keras_metacleaner.data import noise_spec
from keras_metacleaner.data import registry as data_registry
from keras_metacleaner.training import strategy as strategy_lib
from keras_metacleaner.training.config import SPLIT_PREFIX, TrainConfig, config_fields

IMAGENET_WEIGHTS = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_URL = (
    f"https://storage.googleapis.com/tensorflow/keras-applications/resnet/{IMAGENET_WEIGHTS}"
)


def flags_parser(
    tool: str, flag_values: flags.FlagValues = flags.FLAGS, required: tuple[str, ...] = ()
):
    """`cli.flags_parser` with a hint at `--helpfull`, which lists the training flags.

    Args:
        tool: the tool's file name, the first word of the error line.
        flag_values: the flags to parse into.
        required: names of flags that must be given a value.

    Returns:
        A function `argv -> remaining argv`.
    """
    return _flags_parser(
        tool, flag_values, hint=" (--helpfull lists every flag)", required=required
    )


def _flag_type(field) -> type:
    flag_type = field.metadata.get("flag_type")
    if flag_type is not None:
        return flag_type
    return type(field.default)


def _flag_default(field):
    if field.default is None and field.metadata.get("flag_none") is not None:
        return field.metadata["flag_none"]
    return field.default


def define_flags(flag_values: flags.FlagValues = flags.FLAGS, exclude=()) -> list[str]:
    """Defines one flag per `TrainConfig` setting.

    Args:
        flag_values: where to define them (absl's global `FLAGS` by default).
        exclude: setting names the calling tool defines differently.

    Returns:
        The names of the flags defined.

    Example:

    >>> fv = flags.FlagValues()
    >>> "learning_rate" in define_flags(fv)
    True
    """
    names = []
    for _, field in config_fields():
        # Idempotent: tools/train.py and tools/tune.py may share one process (tests).
        if field.name in exclude or field.name in flag_values:
            continue
        kind, default, help_text = _flag_type(field), _flag_default(field), field.metadata["help"]
        choices = field.metadata.get("choices")
        kwargs = {"flag_values": flag_values}
        if choices is not None:
            flags.DEFINE_enum(field.name, default, list(choices), help_text, **kwargs)
        elif kind is bool:
            flags.DEFINE_bool(field.name, default, help_text, **kwargs)
        elif kind is int:
            flags.DEFINE_integer(field.name, default, help_text, **kwargs)
        elif kind is float:
            flags.DEFINE_float(field.name, default, help_text, **kwargs)
        else:
            flags.DEFINE_string(field.name, default, help_text, **kwargs)
        names.append(field.name)
    return names


def _check_spec(flag: str, spec: str) -> None:
    """A dataset spec's syntax and its file or directory, as the sources' registry defines them."""
    problem = data_registry.check_spec(spec)
    if problem:
        raise UsageError(f"--{flag}={spec}: {problem}")


def _imagenet_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("KMC_OFFLINE"):
        return False
    try:
        socket.create_connection(("storage.googleapis.com", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _check_backbone_weights(weights: str | None) -> None:
    if weights is None or weights == "imagenet" and _imagenet_cached():
        return
    if weights == "imagenet":
        if _imagenet_reachable():
            return
        cache = _keras_cache()
        raise UsageError(
            "--backbone_weights=imagenet: the ImageNet weights are not cached and "
            f"storage.googleapis.com is unreachable. Download {IMAGENET_URL} on a machine with "
            f"internet, then pass --backbone_weights=/path/to/{IMAGENET_WEIGHTS} "
            f"(or copy it to {cache}/)."
        )
    if not os.path.isfile(weights):
        raise UsageError(
            f"--backbone_weights={weights}: no such file; pass none, imagenet or the path of a "
            "ResNet50 (include_top=False) weights file."
        )


def _keras_cache() -> str:
    return os.path.join(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "models")


def _imagenet_cached() -> bool:
    return os.path.isfile(os.path.join(_keras_cache(), IMAGENET_WEIGHTS))


def config_from_flags(flag_values: flags.FlagValues = flags.FLAGS) -> TrainConfig:
    """The validated `TrainConfig` of the parsed flags; writes nothing, imports no TensorFlow.

    Args:
        flag_values: parsed flags defined by `define_flags`.

    Returns:
        A `TrainConfig` (not yet resolved: settings left to the method stay None).

    Raises:
        UsageError: one line naming the flag and what was expected.
    """
    settings = {}
    for _, field in config_fields():
        if field.name not in flag_values:
            continue
        value = flag_values[field.name].value
        flag_none = field.metadata.get("flag_none")
        if flag_none is not None and value == flag_none:
            value = None
        if value == "" and field.default is None:
            value = None
        settings[field.name] = value
    config = TrainConfig(**settings)
    try:
        config.validate()
    except ValueError as e:
        raise UsageError(f"--{e}") from None
    _check_spec("dataset", config.dataset)
    spec = config.finetune_dataset
    if spec and not spec.startswith(SPLIT_PREFIX):
        _check_spec("finetune_dataset", spec)
    try:
        # The noise type, its rate and any matrix file (size, rows summing to 1).
        noise_spec.noise_from_spec(
            config.noise_type, config.noise_rate, dataset_name=config.dataset
        )
    except (OSError, ValueError) as e:
        raise UsageError(f"--noise_type={config.noise_type}: {e}") from None
    _check_backbone_weights(config.backbone_weights)
    if config.strategy == "multi_worker":
        try:
            strategy_lib.validate_tf_config(strategy_lib.tf_config())
        except ValueError as e:
            raise UsageError(f"--strategy=multi_worker: {e}") from None
    return config
