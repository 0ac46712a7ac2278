"""Named, complete MetaCleaner configurations: one word selects a method."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

#: `MetaCleanerModel` arguments of each named method. Every loss option is
#: spelled out, so a preset never depends on a library default that may move.
#:
#: - `"metacleaner"`: this project's default: the newest frozen version of it,
#:   `DEFAULT_VERSION` (the same arguments under a name that never moves, so a
#:   result, figure or saved run can say exactly what it measured). α is the posterior that a
#:   member's label is right (`label_posterior`), the classifier also learns
#:   from each member weighted by its α, and each subset's hallucinated loss
#:   is weighted by its largest α, so a subset whose members all look
#:   mislabelled cannot teach its label at full weight; since `metacleaner_v2`,
#:   after 5 warm-up epochs the members it distrusts are also trained towards
#:   the network's own prediction, weighted by 1 - α (bootstrapping), which
#:   stops the late memorisation of pair flips; since `metacleaner_v3`, those
#:   α-weighted losses are divided by their mean over the batch, so the
#:   trusted members are trained at the step plain training would take on
#:   them whatever the noise rate (`loss_weight_normalization="batch"`).
#: - `"paper"`: MetaCleaner exactly as the paper describes it: the FC-FC-ReLU-
#:   sigmoid weighting (Table 2, section 4: 384 hidden units), Eq. 3, the
#:   classifier trained on the hallucinated features alone.
#: - `"loss_reweight"`: the paper's Table 3 (I): the same weighting, but each
#:   image is classified on its own and its loss weighted by its α.
#: The frozen versions of the default, oldest first. A new default is a new
#: entry here (and in `kmc.training.METHODS`); an old one is never edited.
DEFAULT_VERSIONS: MappingProxyType[str, MappingProxyType[str, Any]] = MappingProxyType(
    {
        # Frozen 2026-12-01 (issue 14): what docs/results.md and the figures measured first.
        "metacleaner_v1": MappingProxyType(
            {
                "weighting": "label_posterior",
                "mode": "hallucinate",
                "member_loss_weight": 1.0,
                "subset_loss_weights": "max_alpha",
                # Spelled out when the option arrived: v1 never bootstrapped.
                "bootstrap_after_epochs": None,
                "loss_weight_normalization": None,
            }
        ),
        # Frozen 2026-12-02 (issue 14): v1, and after 5 warm-up epochs the members the
        # cleaner distrusts are also trained towards the network's prediction.
        "metacleaner_v2": MappingProxyType(
            {
                "weighting": "label_posterior",
                "mode": "hallucinate",
                "member_loss_weight": 1.0,
                "subset_loss_weights": "max_alpha",
                "bootstrap_after_epochs": 5,
                # Spelled out when the option arrived: v2 weighed its losses by α itself.
                "loss_weight_normalization": None,
            }
        ),
        # Frozen 2026-12-02 (issue 14): v2 with the α-weighted losses divided by their batch
        # mean, so the trusted members are trained at the step plain training would give them.
        "metacleaner_v3": MappingProxyType(
            {
                "weighting": "label_posterior",
                "mode": "hallucinate",
                "member_loss_weight": 1.0,
                "subset_loss_weights": "max_alpha",
                "bootstrap_after_epochs": 5,
                "loss_weight_normalization": "batch",
            }
        ),
    }
)
#: The version `"metacleaner"` names.
DEFAULT_VERSION = "metacleaner_v3"

PRESETS: MappingProxyType[str, MappingProxyType[str, Any]] = MappingProxyType(
    {
        "metacleaner": DEFAULT_VERSIONS[DEFAULT_VERSION],
        **DEFAULT_VERSIONS,
        "paper": MappingProxyType(
            {
                "weighting": "fc_fc_relu_sig",
                "hidden_units": 384,
                "mode": "hallucinate",
                "member_loss_weight": 0.0,
                "subset_loss_weights": None,
                "bootstrap_after_epochs": None,
                "loss_weight_normalization": None,
            }
        ),
        "loss_reweight": MappingProxyType(
            {
                "weighting": "fc_fc_relu_sig",
                "hidden_units": 384,
                "mode": "loss_reweight",
                "member_loss_weight": 0.0,
                "subset_loss_weights": None,
                "bootstrap_after_epochs": None,
                "loss_weight_normalization": None,
            }
        ),
    }
)
