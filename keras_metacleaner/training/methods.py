"""The methods registry: one named, complete configuration per way of training.

`--method=NAME` (or `TrainConfig(method=NAME)`) selects an entry of `METHODS`.
An entry says which batches the method trains on (`inputs`), its options
(the MetaCleaner options it fixes; `--weighting` and the other options given
explicitly override them) and how to build and compile its model. Adding a
method is one `Method(...)` entry in `METHODS` (its build function next to it).

This module imports no TensorFlow at import time (the builders import
Keras and the models when called), so `training.config` can validate
`--method` before the framework starts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

#: The batches a method trains on (`training.pipelines`):
#: "grouped": subsets `[K, N, H, W, C]` of N same-label images (`group_by_class`);
#: "single": shuffled single images `[B, H, W, C]`;
#: "indexed": single images with each example's index, `({"images", "index"}, y)`.
INPUTS = ("grouped", "single", "indexed")


@dataclasses.dataclass(frozen=True)
class Method:
    """One entry of the registry.

    Args:
        name: the one word users select it by.
        summary: one line for `--help` and the docs.
        inputs: one of `INPUTS`.
        build: `(config, backbone_fn, num_classes, num_examples) -> keras.Model`;
            `backbone_fn(seed)` builds a fresh backbone (co-teaching needs two).
            `config` is the resolved `TrainConfig`.
        options: the settings the method fixes (MetaCleaner options); a
            setting the user gives explicitly overrides its entry here.
        args: the method's own settings (a peer's, from its paper), passed
            to its loss or model and recorded in results.json.
        loss: `(args) -> loss` for `compile` (None: the model computes its own).
        callbacks: `(model, config) -> list` of callbacks the method needs.
        validate: `(config) -> None`, raises `ValueError` for settings the
            method cannot honour (no TensorFlow here).
    """

    name: str
    summary: str
    inputs: str
    build: Callable[..., Any]
    options: dict = dataclasses.field(default_factory=dict)
    args: dict = dataclasses.field(default_factory=dict)
    loss: Callable[[dict], Any] | None = lambda args: "sparse_categorical_crossentropy"
    callbacks: Callable[..., list] = lambda model, config: []
    check: Callable[[Any], None] = lambda config: None

    @property
    def grouped(self) -> bool:
        """Whether the method trains on subsets of N same-label images."""
        return self.inputs == "grouped"

    def validate(self, config) -> None:
        """Raises `ValueError` for settings this method cannot use."""
        if not self.grouped:
            given = [
                name
                for name in V1_OPTIONS  # the MetaCleaner options, by name
                if getattr(config.model, name) is not None
            ]
            if given:
                raise ValueError(
                    f"{', '.join(given)}: MetaCleaner options, but method={self.name} "
                    "trains without a cleaner."
                )
        self.check(config)


# ----------------------------------------------------------------- builders
def _metacleaner(config, backbone_fn, num_classes: int, num_examples: int):
    from keras_metacleaner.models import MetaCleanerModel

    subset = config.subset_loss_weights
    # The preset of the method's name; the resolved options (the method's own
    # unless overridden) are passed explicitly, so results.json lists them all.
    return MetaCleanerModel.from_preset(
        config.method,
        backbone_fn(config.seed),
        num_classes,
        config.subset_size,
        weighting=config.weighting,
        hidden_units=config.hidden_units,
        member_loss_weight=config.member_loss_weight,
        subset_loss_weights=None if subset in (None, "none") else subset,
        bootstrap_after_epochs=(
            None if config.bootstrap_after_epochs in (None, -1) else config.bootstrap_after_epochs
        ),
        loss_weight_normalization=(
            None
            if config.loss_weight_normalization in (None, "none")
            else config.loss_weight_normalization
        ),
        seed=config.seed,
        # The model (and its exported classifier) carries the method's name, as before.
        name=config.method,
    )


def plain_classifier(backbone, num_classes: int, name: str = "baseline"):
    """`kmc.models.plain_classifier` (kept here for `kmc.training.plain_classifier` callers).

    Example:

    >>> from keras_metacleaner.models import small_cnn
    >>> plain_classifier(small_cnn(), 10).output_shape
    (None, 10)
    """
    from keras_metacleaner import models

    return models.plain_classifier(backbone, num_classes, name=name)


def _plain(config, backbone_fn, num_classes: int, num_examples: int):
    return plain_classifier(backbone_fn(config.seed), num_classes, config.method)


def _elr(config, backbone_fn, num_classes: int, num_examples: int):
    from keras_metacleaner import models

    return models.ELRModel(
        plain_classifier(backbone_fn(config.seed), num_classes, "classifier"),
        num_examples=num_examples,
        num_classes=num_classes,
        **config.method_spec.args,
    )


def _coteaching(config, backbone_fn, num_classes: int, num_examples: int):
    from keras_metacleaner import models

    return models.CoTeachingModel(
        plain_classifier(backbone_fn(config.seed), num_classes, "classifier_a"),
        plain_classifier(backbone_fn(config.seed + 1), num_classes, "classifier_b"),
        **config.method_spec.args,
    )


def _gce_loss(args: dict):
    from keras_metacleaner import losses

    return losses.GeneralizedCrossEntropy(**args)


def _sce_loss(args: dict):
    from keras_metacleaner import losses

    return losses.SymmetricCrossEntropy(**args)


#: The MetaCleaner options each grouped method fixes (the values of the presets of
#: `kmc.models.PRESETS`; tests/training/test_methods.py checks they agree).
V1_OPTIONS = {
    "weighting": "label_posterior",
    "member_loss_weight": 1.0,
    "subset_loss_weights": "max_alpha",
    "bootstrap_after_epochs": -1,
    "loss_weight_normalization": "none",
}
V2_OPTIONS = {**V1_OPTIONS, "bootstrap_after_epochs": 5}
V3_OPTIONS = {**V2_OPTIONS, "loss_weight_normalization": "batch"}
PAPER_OPTIONS = {
    "weighting": "fc_fc_relu_sig",
    "member_loss_weight": 0.0,
    "subset_loss_weights": "none",
    "bootstrap_after_epochs": -1,
    "loss_weight_normalization": "none",
}

METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            "metacleaner",
            "this project's default, the newest frozen version (metacleaner_v3): "
            "label_posterior weighting, per-image loss 1.0, subsets weighted by their largest "
            "alpha, after 5 warm-up epochs the members the cleaner distrusts are also "
            "trained towards the network's prediction (1 - alpha), and these alpha-weighted "
            "losses divided by their batch mean",
            "grouped",
            _metacleaner,
            V3_OPTIONS,
        ),
        Method(
            "metacleaner_v1",
            "the default as frozen on 2026-12-01 (no bootstrapping)",
            "grouped",
            _metacleaner,
            V1_OPTIONS,
        ),
        Method(
            "metacleaner_v2",
            "the default as frozen on 2026-12-02: metacleaner_v1 with bootstrapping after 5 "
            "warm-up epochs",
            "grouped",
            _metacleaner,
            V2_OPTIONS,
        ),
        Method(
            "metacleaner_v3",
            "the default as frozen on 2026-12-02 (later): metacleaner_v2 with its alpha-weighted "
            "losses divided by their batch mean, so trusted members are trained at plain "
            "training's step",
            "grouped",
            _metacleaner,
            V3_OPTIONS,
        ),
        Method(
            "paper",
            "MetaCleaner as the paper describes it (Eq. 3, fc_fc_relu_sig, no extra losses)",
            "grouped",
            _metacleaner,
            PAPER_OPTIONS,
        ),
        Method(
            "loss_reweight",
            "the paper's Table 3 (I): alpha weights each image's loss, no hallucination",
            "grouped",
            _metacleaner,
            PAPER_OPTIONS,
        ),
        Method(
            "baseline",
            "plain cross-entropy on single images, same backbone, head and optimizer",
            "single",
            _plain,
        ),
        Method(
            "gce",
            "generalized cross-entropy (Zhang & Sabuncu 2018, q 0.7) on single images",
            "single",
            _plain,
            args={"q": 0.7},
            loss=_gce_loss,
        ),
        Method(
            "sce",
            "symmetric cross-entropy (Wang et al. 2019, alpha 0.1, beta 1.0, A -4) on single "
            "images",
            "single",
            _plain,
            args={"alpha": 0.1, "beta": 1.0, "log_clip": -4.0},
            loss=_sce_loss,
        ),
        Method(
            "elr",
            "early-learning regularization (Liu et al. 2020, lambda 3, beta 0.7), needs each "
            "example's index",
            "indexed",
            _elr,
            args={"lambda_": 3.0, "beta": 0.7},  # the model adds its regulariser to the CE
        ),
        Method(
            "coteaching",
            "co-teaching (Han et al. 2018): two networks exchange small-loss examples, forget "
            "rate estimated from the data",
            "single",
            _coteaching,
            args={"forget_rate": None, "num_gradual": 10, "exponent": 1},
            # Its train_step has its own losses (the compiled one serves evaluation); its
            # fit adds the ForgetRateSchedule callback.
        ),
    )
}


def get_method(name: str) -> Method:
    """The registry entry called `name`.

    Args:
        name: one of `METHODS`.

    Returns:
        A `Method`.

    Raises:
        ValueError: naming the method and the known ones.

    Example:

    >>> get_method("paper").options["weighting"]
    'fc_fc_relu_sig'
    """
    if name not in METHODS:
        raise ValueError(f"method={name!r}: expected one of {', '.join(METHODS)}.")
    return METHODS[name]
