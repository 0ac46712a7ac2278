"""The configuration of a training run: one nested `TrainConfig`, flat flag names.

`TrainConfig` has four sections, `data`, `model`, `optimizer` and `run`. Each
field is also reachable by its flat name (`config.batch_size`), which is the
name of its `tools/train.py` flag; `tools/train_flags.py` generates the flags
from the field metadata here (type, default, help, choices), so this module is
the one place a setting is defined.

This module imports neither TensorFlow nor Keras: a tool validates its flags
with `TrainConfig.validate()` before the framework starts, so a bad value exits
in a fraction of a second and before anything is written. Checks that need the
data (a split name, a class count, the batch against the number of examples)
run in `training.preparation` once the data is loaded, still before anything
is written.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

from keras_metacleaner.training import methods as methods_lib

#: Label noise kinds that need no file (`transition:PATH` and `confusion[:...]` also work).
NOISE_TYPES = ("none", "symmetric", "pairflip")
#: `--noise_type=transition:PATH` reads a [C, C] row-stochastic matrix (.npy, .csv, .txt).
TRANSITION_PREFIX = "transition:"
#: `--noise_type=confusion` / `confusion:PATH`: flips drawn from a classifier's confusion matrix.
CONFUSION_PREFIX = "confusion"
#: `--finetune_dataset=split:NAME` fine-tunes on an extra split of the main dataset.
SPLIT_PREFIX = "split:"
#: Learning-rate schedules (`training.schedule.make_schedule`).
SCHEDULES = ("constant", "step", "cosine")
#: Which weights a run keeps, exports and reports (`training.selection`).
SELECT_ON = ("last", "noisy_val")
# The names below mirror registries that live in modules importing TensorFlow;
# tests/training/test_config.py checks that they stay equal.
STRATEGIES = ("default", "mirrored", "multi_worker")
BACKBONES = ("resnet50", "small_cnn", "wide_resnet_28_10")
WEIGHTINGS = (
    "agreement",
    "attention_exp",
    "attention_sig",
    "constant",
    "fc_fc_relu_sig",
    "fc_fc_sig",
    "fc_relu_fc_relu_sig",
    "label_confidence",
    "label_posterior",
)
SUBSET_LOSS_WEIGHTS = ("none", "max_alpha", "mean_alpha")
LOSS_WEIGHT_NORMALIZATIONS = ("none", "batch")
VERBOSITY = ("auto", "0", "1", "2")


def _field(default: Any, help: str, *, choices=None, flag_none=None, flag_type=None):
    """A config field with what `tools/train_flags.py` needs to define its flag.

    Args:
        default: the library default.
        help: the flag's help text (also the field's documentation).
        choices: allowed values (an enum flag).
        flag_none: the flag value that stands for None (`"none"`, `0`).
        flag_type: the flag's type when the annotation does not say it
            (`str`, `int`, `float`, `bool`).
    """
    metadata = {"help": help, "choices": choices, "flag_none": flag_none, "flag_type": flag_type}
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class DataConfig:
    """What is trained on: source, label noise, subsets, validation split, fine-tuning data."""

    dataset: str | None = _field(
        None,
        "Dataset spec for keras_metacleaner.data.load: fashion_mnist, npz:PATH, folder:PATH, "
        "tfds:NAME?label=KEY, food101n:ROOT, clothing1m:ROOT.",
        flag_type=str,
    )
    noise_type: str = _field(
        "none",
        "Label noise injected into the TRAINING labels: none, symmetric, pairflip, "
        "transition:PATH (a [C, C] row-stochastic matrix, .npy/.csv/.txt) or confusion[:PATH] "
        "(flips drawn from a classifier's confusion matrix).",
    )
    noise_rate: float = _field(0.0, "Fraction of training labels to corrupt, in [0, 1).")
    train_subset: int = _field(0, "Use only the first N training examples, before noise (0: all).")
    validation_split: float = _field(
        0.0,
        "Hold out this fraction of the training examples AFTER the noise is injected (as noisy "
        "as training) to report noisy_val_accuracy each epoch and to pick weights with "
        "--select_on=noisy_val. 0: none (a source's own clean validation split is used then).",
    )
    image_size: int | None = _field(
        None,
        "Resize images to this square size (0: keep the dataset's).",
        flag_none=0,
        flag_type=int,
    )
    augment: bool = _field(
        False,
        "Random resized crop + horizontal flip for training, centre crop for test "
        "(needs --image_size).",
    )
    batch_size: int = _field(
        128,
        "Images per step; K = batch_size / subset_size subsets for MetaCleaner. Must be "
        "divisible by --subset_size for the grouped methods.",
    )
    finetune_dataset: str | None = _field(
        None,
        "Data of the second stage: empty for the same (noisy) training data, split:NAME for an "
        "extra split (e.g. split:clean_train), or another dataset spec.",
        flag_type=str,
    )
    finetune_subset: int = _field(0, "Use only the first N fine-tuning examples (0: all).")


@dataclasses.dataclass
class ModelConfig:
    """What is trained: the method, its MetaCleaner options (overrides) and the backbone."""

    method: str = _field(
        "metacleaner",
        "A named, complete configuration: "
        + "; ".join(f"{m.name}: {m.summary}" for m in methods_lib.METHODS.values())
        + ". --weighting and the other MetaCleaner options override it.",
        choices=tuple(methods_lib.METHODS),
    )
    weighting: str | None = _field(
        None,
        "Override the method's Noisy Weighting (paper Table 2; fc_fc_relu_sig is the paper's). "
        "Empty: the method's own.",
        choices=WEIGHTINGS,
        flag_type=str,
    )
    member_loss_weight: float | None = _field(
        None,
        "Override the method's weight of the alpha-weighted per-image loss added to the "
        "hallucinated one (0: the paper). Empty: the method's own.",
        flag_type=float,
    )
    subset_loss_weights: str | None = _field(
        None,
        "Override the method's weight of each subset's hallucinated loss: none (the paper), "
        "max_alpha or mean_alpha. Empty: the method's own.",
        choices=SUBSET_LOSS_WEIGHTS,
        flag_type=str,
    )
    bootstrap_after_epochs: int | None = _field(
        None,
        "Override the method's bootstrapping: from this epoch on (counted from 0), the members "
        "the cleaner distrusts are also trained towards the network's prediction, weighted by "
        "1 - alpha; -1: never. Empty: the method's own.",
        flag_type=int,
    )
    loss_weight_normalization: str | None = _field(
        None,
        "Override how the method scales its alpha-weighted losses: none (by alpha itself, so "
        "the step on trusted members shrinks with the clean share) or batch (by alpha over its "
        "batch mean, the step plain training would take on them). Empty: the method's own.",
        choices=LOSS_WEIGHT_NORMALIZATIONS,
        flag_type=str,
    )
    hidden_units: int = _field(
        384, "Hidden units of the weighting (384 Food-101N, 512 Clothing1M)."
    )
    subset_size: int = _field(4, "N: same-label images per subset.")
    backbone: str = _field(
        "small_cnn",
        "Feature extractor: resnet50 (the paper), wide_resnet_28_10 (CIFAR-10, with --dropout), "
        "small_cnn (CPU).",
        choices=BACKBONES,
    )
    backbone_weights: str | None = _field(
        None,
        "none, imagenet (needs the Keras download or a cached file), or the path of a local "
        "ResNet50 no-top weights file.",
        flag_none="none",
        flag_type=str,
    )
    dropout: float = _field(0.3, "Dropout inside WideResNet blocks, in [0, 1).")


@dataclasses.dataclass
class OptimizerConfig:
    """How it is trained: SGD with coupled L2, the schedule, the two stages' lengths."""

    epochs: int = _field(10, "Epochs of the first (MetaCleaner or plain) stage.")
    learning_rate: float = _field(0.01, "Initial SGD learning rate.")
    schedule: str | None = _field(
        None,
        "Learning-rate schedule (Keras' own): constant, step (x --lr_decay_factor every "
        "--lr_decay_epochs) or cosine (to 0 at the last epoch). Empty: step when "
        "--lr_decay_epochs > 0, else constant.",
        choices=SCHEDULES,
        flag_type=str,
    )
    lr_decay_epochs: int = _field(0, "--schedule=step: decay every this many epochs.")
    lr_decay_factor: float = _field(0.1, "--schedule=step: multiplier at each decay, in (0, 1].")
    warmup_epochs: int = _field(
        0, "Epochs of linear warm-up from 0 to --learning_rate before the schedule (any schedule)."
    )
    momentum: float = _field(0.9, "SGD momentum, in [0, 1).")
    weight_decay: float = _field(
        0.0,
        "Coupled L2 weight decay (Caffe/PyTorch semantics, added to the gradient before "
        "momentum), >= 0.",
    )
    finetune_epochs: int = _field(
        0, "Second stage: epochs of the plain classifier (cleaner unloaded) on single images."
    )
    finetune_learning_rate: float = _field(
        0.0, "Rate of the second stage (0: the rate the first stage ended with)."
    )


@dataclasses.dataclass
class RunConfig:
    """Where and how the run happens: directory, seed, devices, selection, export."""

    model_dir: str | None = _field(
        None, "Directory of backups, logs, model.keras, results.json.", flag_type=str
    )
    seed: int = _field(0, "Seeds Python, NumPy, TensorFlow, the label noise and shuffles.")
    strategy: str = _field(
        "default",
        "default (one device), mirrored (all local GPUs / logical CPUs), multi_worker "
        "(cluster from TF_CONFIG).",
        choices=STRATEGIES,
    )
    mixed_precision: bool = _field(False, "Train with the mixed_float16 policy.")
    select_on: str = _field(
        "last",
        "Which weights are kept, exported and reported as test_accuracy: last (the final "
        "epoch) or noisy_val (the epoch with the best validation accuracy; needs "
        "--validation_split or a source with a validation split).",
        choices=SELECT_ON,
    )
    export_dir: str | None = _field(
        None,
        "Export a SavedModel for TF Serving to <export_dir>/<version>/ (chief only).",
        flag_type=str,
    )
    alpha_auroc_examples: int = _field(
        2000, "Training examples scored for the alpha AUROC (when clean labels are known)."
    )
    verbose: str = _field(
        "auto", "Keras fit verbosity (1: progress bar, 2: one line per epoch).", choices=VERBOSITY
    )
    overwrite: bool = _field(
        False,
        "Replace a finished run in --model_dir: its files are removed and training starts "
        "afresh. Without it such a --model_dir is refused (exit 2). An interrupted run resumes "
        "when its settings are the same.",
    )


#: Section name -> section class, in the order of `TrainConfig`.
SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "optimizer": OptimizerConfig,
    "run": RunConfig,
}
#: Flat (flag) name -> section name.
FLAT_NAMES: dict[str, str] = {
    f.name: section for section, cls in SECTIONS.items() for f in dataclasses.fields(cls)
}


def config_fields():
    """Every setting as `(section, dataclasses.Field)`, in flag order.

    Returns:
        A list of pairs; `field.metadata` has `help`, `choices`, `flag_none`
        and `flag_type`.

    Example:

    >>> [f.name for _, f in config_fields()][:3]
    ['dataset', 'noise_type', 'noise_rate']
    """
    return [(section, f) for section, cls in SECTIONS.items() for f in dataclasses.fields(cls)]


@dataclasses.dataclass(init=False)
class TrainConfig:
    """Everything a training run needs, in four sections, reachable by flat names.

    Args:
        dataset: a `keras_metacleaner.data.load` spec (`data.dataset`).
        model_dir: where backups, logs, `model.keras` and `results.json` go
            (`run.model_dir`).
        data, model, optimizer, run: the sections, as `DataConfig`,
            `ModelConfig`, `OptimizerConfig`, `RunConfig` or dicts.
        **settings: any setting by its flat name (the `tools/train.py` flag
            name), e.g. `epochs=30`; see `config_fields()` for the list and
            each one's help.

    Example:

    >>> config = TrainConfig("fashion_mnist", "/tmp/run", method="paper", epochs=3)
    >>> config.optimizer.epochs, config.epochs, config.model.method
    (3, 3, 'paper')
    >>> config.resolved().model.weighting
    'fc_fc_relu_sig'
    """

    data: DataConfig
    model: ModelConfig
    optimizer: OptimizerConfig
    run: RunConfig

    def __init__(
        self,
        dataset: str | None = None,
        model_dir: str | None = None,
        *,
        data: DataConfig | dict | None = None,
        model: ModelConfig | dict | None = None,
        optimizer: OptimizerConfig | dict | None = None,
        run: RunConfig | dict | None = None,
        **settings: Any,
    ):
        given = {"data": data, "model": model, "optimizer": optimizer, "run": run}
        for name, cls in SECTIONS.items():
            section = given[name]
            if section is None:
                section = cls()
            elif isinstance(section, dict):
                section = cls(**section)
            elif not isinstance(section, cls):
                raise ValueError(f"{name}: expected a {cls.__name__} or a dict, got {section!r}.")
            object.__setattr__(self, name, section)
        if dataset is not None:
            settings["dataset"] = dataset
        if model_dir is not None:
            settings["model_dir"] = model_dir
        for key, value in settings.items():
            setattr(self, key, value)

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails: flat names read through to their section.
        section = FLAT_NAMES.get(name)
        if section is None:
            raise AttributeError(f"TrainConfig has no setting {name!r}.")
        return getattr(object.__getattribute__(self, section), name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in SECTIONS:
            object.__setattr__(self, name, value)
            return
        section = FLAT_NAMES.get(name)
        if section is None:
            raise TypeError(
                f"TrainConfig has no setting {name!r}; the settings are {sorted(FLAT_NAMES)}."
            )
        setattr(getattr(self, section), name, value)

    def flat(self) -> dict[str, Any]:
        """Every setting by its flat (flag) name.

        Example:

        >>> TrainConfig("x", "/tmp/r").flat()["batch_size"]
        128
        """
        return {f.name: getattr(getattr(self, s), f.name) for s, f in config_fields()}

    def nested(self) -> dict[str, dict[str, Any]]:
        """The settings by section, as plain dicts (the `config` of results.json)."""
        return {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}

    def replace(self, **settings: Any) -> TrainConfig:
        """A copy with some settings (flat names) changed.

        Example:

        >>> TrainConfig("x", "/tmp/r").replace(epochs=2).epochs
        2
        """
        return TrainConfig(**{**self.flat(), **settings})

    @property
    def method_spec(self) -> methods_lib.Method:
        """The `Method` registry entry of `model.method`."""
        return methods_lib.get_method(self.model.method)

    def resolved(self) -> TrainConfig:
        """A copy with every "the method's own" (None) option and the schedule filled in.

        The method's options apply where the config leaves them None; given
        values are overrides. This is the configuration results.json records.

        Returns:
            A new `TrainConfig`.

        Example:

        >>> c = TrainConfig("x", "/tmp/r", method="paper", member_loss_weight=1.0).resolved()
        >>> c.weighting, c.member_loss_weight, c.subset_loss_weights, c.schedule
        ('fc_fc_relu_sig', 1.0, 'none', 'constant')
        """
        out = self.replace()
        method = out.method_spec
        for key, value in method.options.items():
            if getattr(out.model, key, None) is None:
                setattr(out.model, key, value)
        if out.schedule is None:
            out.schedule = "step" if out.lr_decay_epochs > 0 else "constant"
        return out

    def validate(self) -> None:
        """Checks every value that needs no data; raises `ValueError` naming the setting.

        Runs without TensorFlow. Floats must be finite (`nan <= 0` is False,
        so a range check alone lets NaN through).

        Example:

        >>> TrainConfig("x", "/tmp/r", batch_size=30).validate()  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: batch_size=30 must be divisible by subset_size=4 (K = ...
        """
        for section, f in config_fields():
            value = getattr(getattr(self, section), f.name)
            choices = f.metadata["choices"]
            if value is None:
                continue
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{f.name}={value} must be a finite number.")
            if choices is not None and str(value) not in choices:
                raise ValueError(f"{f.name}={value!r}: expected one of {', '.join(choices)}.")
        c = self
        if not c.dataset:
            raise ValueError("dataset is required (a keras_metacleaner.data.load spec).")
        if not c.model_dir:
            raise ValueError("model_dir is required (the run's directory).")
        noise = c.noise_type
        if (
            noise not in NOISE_TYPES
            and not noise.startswith(TRANSITION_PREFIX)
            and not (noise == CONFUSION_PREFIX or noise.startswith(CONFUSION_PREFIX + ":"))
        ):
            raise ValueError(
                f"noise_type={noise!r}: expected one of {', '.join(NOISE_TYPES)}, "
                f"'{TRANSITION_PREFIX}PATH' or 'confusion[:PATH]'."
            )
        _in_range("noise_rate", c.noise_rate, 0.0, 1.0)
        if noise == "none" and c.noise_rate > 0:
            raise ValueError(
                f"noise_rate={c.noise_rate} with noise_type=none: choose a noise type (e.g. "
                "symmetric) or set the rate to 0."
            )
        _in_range("validation_split", c.validation_split, 0.0, 1.0)
        _in_range("momentum", c.momentum, 0.0, 1.0)
        _in_range("dropout", c.dropout, 0.0, 1.0)
        for name in ("subset_size", "hidden_units", "batch_size"):
            if getattr(c, name) < 1:
                raise ValueError(f"{name}={getattr(c, name)} must be >= 1.")
        method = c.method_spec
        if method.grouped and c.batch_size % c.subset_size:
            raise ValueError(
                f"batch_size={c.batch_size} must be divisible by subset_size={c.subset_size} "
                "(K = batch_size / subset_size subsets per step)."
            )
        for name in (
            "epochs",
            "finetune_epochs",
            "train_subset",
            "finetune_subset",
            "lr_decay_epochs",
            "warmup_epochs",
            "alpha_auroc_examples",
        ):
            if getattr(c, name) < 0:
                raise ValueError(f"{name}={getattr(c, name)} must be >= 0.")
        if c.epochs + c.finetune_epochs < 1:
            raise ValueError("epochs + finetune_epochs must be >= 1.")
        if c.learning_rate <= 0:
            raise ValueError(f"learning_rate={c.learning_rate} must be > 0.")
        for name in ("finetune_learning_rate", "weight_decay"):
            if getattr(c, name) < 0:
                raise ValueError(f"{name}={getattr(c, name)} must be >= 0.")
        if c.member_loss_weight is not None and c.member_loss_weight < 0:
            raise ValueError(f"member_loss_weight={c.member_loss_weight} must be >= 0.")
        if c.bootstrap_after_epochs is not None and c.bootstrap_after_epochs < -1:
            raise ValueError(
                f"bootstrap_after_epochs={c.bootstrap_after_epochs} must be >= 0, or -1 (never)."
            )
        r = c.resolved()  # the method's options where the config leaves them to it
        if (
            method.grouped
            and r.bootstrap_after_epochs not in (None, -1)
            and (c.method == "loss_reweight" or not r.member_loss_weight)
        ):
            raise ValueError(
                f"bootstrap_after_epochs={r.bootstrap_after_epochs} relabels members "
                f"through the per-image loss: method={c.method} with member_loss_weight="
                f"{r.member_loss_weight} has none (set member_loss_weight > 0, or "
                "bootstrap_after_epochs=-1)."
            )
        if (
            method.grouped
            and r.loss_weight_normalization == "batch"
            and (
                c.method == "loss_reweight"
                or (not r.member_loss_weight and r.subset_loss_weights in (None, "none"))
            )
        ):
            raise ValueError(
                "loss_weight_normalization=batch scales the alpha-weighted losses: "
                f"method={c.method} with member_loss_weight={r.member_loss_weight} and "
                f"subset_loss_weights={r.subset_loss_weights} has none (set "
                "loss_weight_normalization=none)."
            )
        if not 0 < c.lr_decay_factor <= 1:
            raise ValueError(f"lr_decay_factor={c.lr_decay_factor} must be in (0, 1].")
        schedule = c.schedule or ("step" if c.lr_decay_epochs > 0 else "constant")
        if schedule == "step" and c.lr_decay_epochs < 1:
            raise ValueError("schedule=step needs lr_decay_epochs >= 1.")
        if schedule != "step" and c.lr_decay_epochs > 0:
            raise ValueError(
                f"lr_decay_epochs={c.lr_decay_epochs} applies only to schedule=step "
                f"(schedule={schedule})."
            )
        if c.epochs and c.warmup_epochs >= c.epochs:
            raise ValueError(
                f"warmup_epochs={c.warmup_epochs} must be < epochs={c.epochs} "
                "(the schedule needs epochs after the warm-up)."
            )
        if c.image_size is not None and c.image_size < 8:
            raise ValueError(f"image_size={c.image_size} must be >= 8.")
        if c.augment and not c.image_size:
            raise ValueError("augment needs image_size (the crop size).")
        if c.backbone_weights is not None and c.backbone != "resnet50":
            raise ValueError(
                f"backbone_weights={c.backbone_weights}: only backbone=resnet50 has pretrained "
                f"weights (got backbone={c.backbone})."
            )
        for name in ("model_dir", "export_dir"):
            _check_directory(name, getattr(c, name))
        method.validate(c)


def _in_range(name: str, value: float, low: float, high: float) -> None:
    """`low <= value < high`, else a ValueError naming `name`."""
    if not low <= value < high:
        raise ValueError(f"{name}={value} must be in [{low:g}, {high:g}).")


def _check_directory(name: str, path: str | None) -> None:
    """Refuses a directory path that exists as a file or lies under a file."""
    if not path:
        return
    path = os.path.abspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{name}={path}: exists and is not a directory.")
    parent = os.path.dirname(path)
    while parent and not os.path.exists(parent):
        parent, previous = os.path.dirname(parent), parent
        if parent == previous:
            break
    if parent and os.path.exists(parent) and not os.path.isdir(parent):
        raise ValueError(f"{name}={path}: {parent} is a file, so the directory cannot be made.")
