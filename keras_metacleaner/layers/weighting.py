"""Noisy Weighting: functions that give each member of a subset a confidence α.

Every weighting maps subset features `[K, N, D]` to confidences `α: [K, N]`
inside a documented range `[alpha_min, alpha_max]`. The six variants of the
paper's Table 2 are here by name, plus three that read the members'
relations or the classifier instead of learning α from the hallucinated loss
alone (the paper's learned layer can collapse to a constant α: see
docs/results.md).

To add a weighting: subclass `Weighting` in this file (or your own module),
register it with `keras.saving.register_keras_serializable`, and add one line
to `WEIGHTINGS`.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any

import keras
from keras import ops

from keras_metacleaner.layers.global_batch import global_mean

PACKAGE = "keras_metacleaner"


def _is_int(value: object) -> bool:
    """True for Python and NumPy integers (not bools): what a size argument may be."""
    return isinstance(value, Integral) and not isinstance(value, bool)


@keras.saving.register_keras_serializable(package=PACKAGE)
class Weighting(keras.layers.Layer):
    """Base class of the Noisy Weighting functions (Eq. 2 of the paper).

    Subclasses implement `call(features, class_scores=None)` returning `α`
    of shape `[K, N]` and set `alpha_min` / `alpha_max`, the range their α
    is guaranteed to lie in. `alpha_min` is what `alpha_floor` statistics
    compare against: a share of α stuck there means the weighting is dead.

    Args:
        subset_size: int. N, the number of images in one subset.
        hidden_units: int. Width of the hidden layer, where there is one.
        **kwargs: passed to `keras.layers.Layer`.
    """

    alpha_min: float = 0.0
    alpha_max: float = 1.0
    #: True when the weighting reads `class_scores`, the classifier's
    #: log-probability of the subset's label for each member.
    uses_class_scores: bool = False
    #: The losses this weighting is documented and benchmarked with, which
    #: `MetaCleanerModel` uses for options left at `"auto"`: the paper's pure
    #: hallucination (no per-image loss, every subset weighted equally) for
    #: the learned weightings, so that naming one never gives an untested mix.
    default_member_loss_weight: float = 0.0
    default_subset_loss_weights: str | None = None
    #: Epochs of warm-up before the members this weighting distrusts are also
    #: trained towards the network's prediction (`bootstrap_after_epochs`); None: never.
    default_bootstrap_after_epochs: int | None = None

    def __init__(self, subset_size: int, hidden_units: int = 384, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not _is_int(subset_size) or subset_size < 1:
            raise ValueError(f"`subset_size` must be an integer >= 1, got {subset_size!r}.")
        if not _is_int(hidden_units) or hidden_units < 0:
            raise ValueError(f"`hidden_units` must be an integer >= 0, got {hidden_units!r}.")
        self.subset_size = int(subset_size)
        self.hidden_units = int(hidden_units)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape[:2])

    def class_scores(self, log_probs, labels):
        """The `class_scores` this weighting reads, from the classifier.

        Args:
            log_probs: `[K, N, C]` log-softmax of each member's logits.
            labels: `[K]` int, each subset's (noisy) label.

        Returns:
            `[K, N]` log p(label | v_i).
        """
        index = ops.broadcast_to(ops.reshape(labels, (-1, 1, 1)), (*ops.shape(log_probs)[:2], 1))
        return ops.squeeze(ops.take_along_axis(log_probs, index, axis=-1), -1)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"subset_size": self.subset_size, "hidden_units": self.hidden_units})
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class ConstantWeighting(Weighting):
    """α = 1 for every member: Eq. 3 becomes the plain mean (Table 2, I).

    Example:

    >>> w = ConstantWeighting(subset_size=4)
    >>> tuple(w(keras.ops.ones((2, 4, 8))).shape)
    (2, 4)
    """

    alpha_min = 1.0
    alpha_max = 1.0

    def call(self, features, class_scores=None):
        return ops.ones(ops.shape(features)[:2], dtype=features.dtype)


@keras.saving.register_keras_serializable(package=PACKAGE)
class AttentionWeighting(Weighting):
    """α_i = g(a·tanh(W v_i + b)), g = sigmoid or exp (Table 2, II).

    Scores each member on its own, so it is order-equivariant but blind to
    the other members of the subset.

    Args:
        subset_size: int. N.
        hidden_units: int. Rows of W (384 for Food-101N, 512 for Clothing1M).
        gate: `"sigmoid"` (α in (0, 1)) or `"exp"` (α in (e^-|a|, e^|a|)).

    Example:

    >>> w = AttentionWeighting(subset_size=4, hidden_units=16, gate="exp")
    >>> tuple(w(keras.ops.ones((2, 4, 8))).shape)
    (2, 4)
    """

    def __init__(
        self, subset_size: int, hidden_units: int = 384, gate: str = "sigmoid", **kwargs: Any
    ) -> None:
        super().__init__(subset_size, hidden_units, **kwargs)
        if gate not in ("sigmoid", "exp"):
            raise ValueError(f"`gate` must be 'sigmoid' or 'exp', got {gate!r}.")
        self.gate = gate
        # exp(a·tanh(.)) is unbounded above as `a` learns: no finite alpha_max.
        self.alpha_max = 1.0 if gate == "sigmoid" else float("inf")
        self.projection = keras.layers.Dense(hidden_units, activation="tanh", name="projection")
        self.score = keras.layers.Dense(1, use_bias=False, name="score")

    def build(self, input_shape):
        self.projection.build(input_shape)
        self.score.build((*input_shape[:-1], self.hidden_units))

    def call(self, features, class_scores=None):
        logits = ops.squeeze(self.score(self.projection(features)), axis=-1)
        return ops.sigmoid(logits) if self.gate == "sigmoid" else ops.exp(logits)

    def get_config(self) -> dict:
        return {**super().get_config(), "gate": self.gate}


@keras.saving.register_keras_serializable(package=PACKAGE)
class DenseWeighting(Weighting):
    """FC layers on the concatenated subset, then a sigmoid (Table 2, III).

    `[v_1 … v_N]` (N·D) → FC(hidden_units) → [ReLU] → FC(N) → [ReLU] → sigmoid.
    With the ReLU before the sigmoid, α lies in [0.5, 1] (the paper's default,
    `fc_fc_relu_sig`); a unit whose pre-activation goes negative gets no
    gradient, which is how this variant dies (α ≡ 0.5). Because the first FC
    layer sees positions, `MetaCleanerModel` shuffles every subset each step
    (section 3.3).

    Args:
        subset_size: int. N.
        hidden_units: int. Width of the first FC layer (384 or 512 in the paper).
        hidden_relu: bool. ReLU after the first FC layer.
        output_relu: bool. ReLU after the second FC layer.
        **kwargs: passed to `keras.layers.Layer`.

    Example:

    >>> w = DenseWeighting(subset_size=4, hidden_units=16, output_relu=True)
    >>> alpha = w(keras.random.normal((2, 4, 8)))
    >>> bool(keras.ops.all(alpha >= 0.5))
    True
    """

    def __init__(
        self,
        subset_size: int,
        hidden_units: int = 384,
        hidden_relu: bool = False,
        output_relu: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(subset_size, hidden_units, **kwargs)
        self.hidden_relu = bool(hidden_relu)
        self.output_relu = bool(output_relu)
        self.alpha_min = 0.5 if self.output_relu else 0.0
        self.hidden = keras.layers.Dense(hidden_units, name="hidden")
        self.output_dense = keras.layers.Dense(subset_size, name="output")

    def build(self, input_shape: tuple) -> None:
        flat = input_shape[1] * input_shape[2] if None not in input_shape[1:] else None
        self.hidden.build((input_shape[0], flat))
        self.output_dense.build((input_shape[0], self.hidden_units))

    def _relu(self, x):
        return ops.relu(x)

    def _features_in(self, features):
        """The features the FC layers read (a hook for the experimental variants)."""
        return features

    def _gate(self, logits):
        return ops.sigmoid(logits)

    def call(self, features, class_scores=None):
        features = self._features_in(features)
        shape = ops.shape(features)
        hidden = self.hidden(ops.reshape(features, (shape[0], shape[1] * shape[2])))
        if self.hidden_relu:
            hidden = self._relu(hidden)
        logits = self.output_dense(hidden)
        if self.output_relu:
            logits = self._relu(logits)
        return self._gate(logits)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"hidden_relu": self.hidden_relu, "output_relu": self.output_relu})
        return config

    @classmethod
    def from_config(cls, config: dict) -> DenseWeighting:
        if cls is not DenseWeighting:
            return cls(**config)
        # Files saved before the collapse remedies left this class carry their
        # options: at their defaults this is the paper's layer, otherwise the
        # experimental class that still implements them.
        config = dict(config)
        remedies = {key: config.pop(key) for key in _DENSE_REMEDIES if key in config}
        if any(value != _DENSE_REMEDIES[key] for key, value in remedies.items()):
            from keras_metacleaner.experimental.dense import RemedyDenseWeighting

            return RemedyDenseWeighting(**config, **remedies)
        return cls(**config)


#: Options `DenseWeighting` had before they moved to
#: `keras_metacleaner.experimental.RemedyDenseWeighting`, with their defaults.
_DENSE_REMEDIES = {
    "negative_slope": 0.0,
    "output_bias": 0.0,
    "normalize_inputs": False,
    "stop_input_gradient": False,
    "temperature": 1.0,
}


def _unit(x):
    return x / (ops.norm(x, axis=-1, keepdims=True) + 1e-6)


def _leave_one_out(features):
    """Unit-norm features and the unit-norm mean of the other N-1 members."""
    normalized = _unit(features)
    return normalized, _unit(ops.sum(normalized, axis=1, keepdims=True) - normalized)


@keras.saving.register_keras_serializable(package=PACKAGE)
class AgreementWeighting(Weighting):
    """α_i = sigmoid(τ·cos(v_i, mean of the others) + b + MLP): order-equivariant.

    Each member is scored by how well its L2-normalised feature agrees with
    the mean of the other N-1 members, plus a small shared MLP on
    `[v̂_i, v̂_i ⊙ m̂_-i]`. Unlike an FC on the concatenation, permuting the
    subset permutes α the same way.

    Args:
        subset_size: int. N.
        hidden_units: int. Width of the MLP's hidden layer.
        temperature: float. Initial τ, the weight of the cosine.

    Example:

    >>> w = AgreementWeighting(subset_size=4, hidden_units=16)
    >>> tuple(w(keras.random.normal((2, 4, 8))).shape)
    (2, 4)
    """

    def __init__(
        self, subset_size: int, hidden_units: int = 64, temperature: float = 5.0, **kwargs: Any
    ) -> None:
        super().__init__(subset_size, hidden_units, **kwargs)
        self.temperature = float(temperature)
        self.hidden = keras.layers.Dense(hidden_units, activation="relu", name="hidden")
        self.score = keras.layers.Dense(1, kernel_initializer="zeros", name="score")

    def build(self, input_shape):
        self.hidden.build((*input_shape[:-1], 2 * input_shape[-1]))
        self.score.build((*input_shape[:-1], self.hidden_units))
        self.tau = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(self.temperature), name="tau"
        )
        self.offset = self.add_weight(shape=(), initializer="zeros", name="offset")

    def call(self, features, class_scores=None):
        normalized, others = _leave_one_out(features)
        cosine = ops.sum(normalized * others, axis=-1)
        mlp = self.score(self.hidden(ops.concatenate([normalized, normalized * others], -1)))
        centred = cosine - ops.mean(cosine, axis=1, keepdims=True)
        tau = ops.cast(self.tau, features.dtype)
        offset = ops.cast(self.offset, features.dtype)
        return ops.sigmoid(tau * centred + offset + ops.squeeze(mlp, -1))

    def get_config(self) -> dict:
        return {**super().get_config(), "temperature": self.temperature}


class _LabelScoreWeighting(Weighting):
    """Base of the weightings that read the classifier's view of each member's label.

    α_i = floor + (1 - floor)·`_confidence(class_scores)`, through a stopped
    gradient, and α = 1 without `class_scores`. Subclasses define
    `_confidence`; `_label_scores` gives log q_i, with q_i = p(y | v_i),
    divided by max_c p(c | v_i) when `relative`.
    """

    uses_class_scores = True
    # Benchmarked with the α-weighted per-image loss and max-α subset weights
    # (docs/results.md): the default method's losses.
    default_member_loss_weight = 1.0
    default_subset_loss_weights = "max_alpha"

    def __init__(
        self,
        subset_size: int,
        hidden_units: int = 0,
        floor: float = 0.05,
        relative: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(subset_size, hidden_units, **kwargs)
        if not 0.0 <= floor < 1.0:
            raise ValueError(f"`floor` must be in [0, 1), got {floor}.")
        self.floor = float(floor)
        self.relative = bool(relative)
        self.alpha_min = self.floor

    def _label_scores(self, log_probs, labels):
        scores = super().class_scores(log_probs, labels)
        if self.relative:
            scores = scores - ops.max(log_probs, axis=-1)
        return scores

    def _confidence(self, class_scores):
        raise NotImplementedError

    def call(self, features, class_scores=None):
        if class_scores is None:
            return ops.ones(ops.shape(features)[:2], dtype=features.dtype)
        confidence = self._confidence(ops.stop_gradient(ops.cast(class_scores, "float32")))
        return ops.cast(self.floor + (1.0 - self.floor) * confidence, features.dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "floor": self.floor, "relative": self.relative}


@keras.saving.register_keras_serializable(package=PACKAGE)
class LabelConfidenceWeighting(_LabelScoreWeighting):
    """α_i = floor + (1 - floor)·(p(y | v_i) / max_c p(c | v_i))^γ, no gradient.

    The classifier's probability of the subset's (noisy) label for each
    member, relative to its most likely class, read with a stopped gradient:
    the softmax compares v_i with every class prototype (the classifier's
    rows), and a member whose feature the classifier puts in another class
    gets a low weight. Because the classification loss cannot move α (it is
    not a function of trainable weights through any gradient path), it cannot
    push α back to uniform, the way a learned weighting can collapse.
    Early in training every class is about equally likely, so Eq. 3 starts as
    the plain mean; the contrast grows as the classifier learns the clean
    majority of each class, while averaging keeps it from memorising the
    flipped labels.

    Relative to the top class (the default) rather than p(y | v_i) alone: a
    member the classifier already puts in its label's class keeps α = 1
    however unsure the classifier is, so hard but correctly labelled images
    are not turned down with the wrong ones (docs/results.md compares both).

    Needs `class_scores` (`[K, N]`, from `class_scores()`), which
    `MetaCleanerModel` computes; without them it falls back to α = 1.

    Args:
        subset_size: int. N.
        hidden_units: int. Unused; kept for a uniform signature.
        floor: float in [0, 1). The lowest α: wrong-looking members keep a
            little weight (the paper's argument for α ≥ 0.5 on fine-grained
            data).
        gamma: float > 0. Sharpness: α uses p^γ.
        relative: bool. Divide p(y | v_i) by max_c p(c | v_i) (default);
            False reads p(y | v_i) alone.

    Example:

    >>> w = LabelConfidenceWeighting(subset_size=2, floor=0.0, relative=False)
    >>> scores = keras.ops.log(keras.ops.convert_to_tensor([[0.9, 0.1]]))
    >>> [round(float(a), 2) for a in w(keras.ops.ones((1, 2, 3)), scores)[0]]
    [0.9, 0.1]
    """

    def __init__(
        self,
        subset_size: int,
        hidden_units: int = 0,
        floor: float = 0.05,
        gamma: float = 1.0,
        relative: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(subset_size, hidden_units, floor, relative, **kwargs)
        if gamma <= 0:
            raise ValueError(f"`gamma` must be > 0, got {gamma}.")
        self.gamma = float(gamma)

    def class_scores(self, log_probs, labels):
        return self._label_scores(log_probs, labels)

    def _confidence(self, class_scores):
        return ops.exp(self.gamma * class_scores)

    def get_config(self) -> dict:
        return {**super().get_config(), "gamma": self.gamma}


@keras.saving.register_keras_serializable(package=PACKAGE)
class LabelPosteriorWeighting(_LabelScoreWeighting):
    """α_i = floor + (1 - floor)·P(label is right | v_i), no gradient.

    Reads the classifier like `LabelConfidenceWeighting`, but turns its
    confidence into the posterior probability that the subset's label is the
    member's true class, under label noise whose clean share π is estimated
    from the batch (the share of members the classifier puts in their label's
    class):

        odds_i = π / (1 - π) · m · q_i / (1 - q_i),  α_i ∝ odds_i / (1 + odds_i)

    with `q_i = p(y | v_i) / max_c p(c | v_i)` (or `p(y | v_i)`) and `m`
    the number of classes a wrong label is spread over (C - 1 for symmetric
    noise; 1, pair flips, the default, is the most cautious). On clean data
    π → 1 and every member, hard ones included, keeps α ≈ 1: plain training,
    where `LabelConfidenceWeighting` turns hard correct images down like
    wrong ones. With more noise π drops
    to its lower bound; with m = 1 and π = 0.5, α = q, `LabelConfidenceWeighting`'s
    α, which the default bound makes the harshest this weighting gets.

    Needs `class_scores` (the posterior log-odds, `[K, N]`, from
    `class_scores()`), which `MetaCleanerModel` computes; without them it
    falls back to α = 1.

    Args:
        subset_size: int. N.
        hidden_units: int. Unused; kept for a uniform signature.
        floor: float in [0, 1). The lowest α.
        relative: bool. Read q relative to the top class (default) or
            p(y | v_i) alone.
        clean_prior: float in (0, 1) or None. π; None (default) estimates it
            from each (global) batch, clipped to [min_clean_prior, 0.99].
        min_clean_prior: float in (0, 0.99]. The lowest estimate of π.
            Lower bounds turn members down harder once the classifier
            disagrees with most labels, which can let it lock onto one class
            under heavy noise; 0.5 (default) stops at
            `LabelConfidenceWeighting`'s α.
        flip_classes: int >= 1 or None. m (default 1); None is C - 1.

    Example:

    >>> w = LabelPosteriorWeighting(subset_size=2, floor=0.0, clean_prior=0.5)
    >>> log_probs = keras.ops.log(keras.ops.convert_to_tensor([[[0.5, 0.5], [0.2, 0.8]]]))
    >>> scores = w.class_scores(log_probs, keras.ops.convert_to_tensor([0]))
    >>> [round(float(a), 2) for a in w(keras.ops.ones((1, 2, 3)), scores)[0]]
    [1.0, 0.25]
    """

    # The default method since metacleaner_v2 (docs/results.md, issue 14).
    default_bootstrap_after_epochs = 5

    #: The highest estimate of the clean share: never trust every label fully.
    max_clean_prior = 0.99

    def __init__(
        self,
        subset_size: int,
        hidden_units: int = 0,
        floor: float = 0.05,
        relative: bool = True,
        clean_prior: float | None = None,
        flip_classes: int | None = 1,
        min_clean_prior: float = 0.5,
        **kwargs: Any,
    ) -> None:
        super().__init__(subset_size, hidden_units, floor, relative, **kwargs)
        if clean_prior is not None and not 0.0 < clean_prior < 1.0:
            raise ValueError(f"`clean_prior` must be in (0, 1) or None, got {clean_prior}.")
        if not 0.0 < min_clean_prior <= self.max_clean_prior:
            raise ValueError(
                f"`min_clean_prior` must be in (0, {self.max_clean_prior}], got {min_clean_prior}."
            )
        if flip_classes is not None and (int(flip_classes) != flip_classes or flip_classes < 1):
            raise ValueError(f"`flip_classes` must be an integer >= 1 or None, got {flip_classes}.")
        self.flip_classes = None if flip_classes is None else int(flip_classes)
        self.clean_prior = None if clean_prior is None else float(clean_prior)
        self.min_clean_prior = float(min_clean_prior)

    def class_scores(self, log_probs, labels):
        log_probs = ops.stop_gradient(ops.cast(log_probs, "float32"))
        score = self._label_scores(log_probs, labels)
        if self.clean_prior is None:
            agrees = ops.argmax(log_probs, axis=-1) == ops.reshape(
                ops.cast(labels, "int32"), (-1, 1)
            )
            prior = ops.clip(
                global_mean(ops.cast(agrees, "float32")),
                self.min_clean_prior,
                self.max_clean_prior,
            )
        else:
            prior = ops.convert_to_tensor(self.clean_prior, "float32")
        # log q - log(1 - q), finite at q = 1 (the top class), where α -> 1.
        score = ops.minimum(score, -1e-6)
        log_odds_label = score - ops.log(-ops.expm1(score))
        if self.flip_classes is None:
            spread = ops.cast(ops.shape(log_probs)[-1] - 1, "float32")
        else:
            spread = ops.convert_to_tensor(float(self.flip_classes), "float32")
        return ops.log(prior) - ops.log(1.0 - prior) + ops.log(spread) + log_odds_label

    def _confidence(self, class_scores):
        return ops.sigmoid(class_scores)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "clean_prior": self.clean_prior,
            "flip_classes": self.flip_classes,
            "min_clean_prior": self.min_clean_prior,
        }


#: Names accepted by `get_weighting` and the `weighting=` arguments.
WEIGHTINGS = {
    "constant": lambda n, h: ConstantWeighting(n, h),
    "attention_sig": lambda n, h: AttentionWeighting(n, h, gate="sigmoid"),
    "attention_exp": lambda n, h: AttentionWeighting(n, h, gate="exp"),
    "fc_fc_sig": lambda n, h: DenseWeighting(n, h, hidden_relu=False, output_relu=False),
    "fc_fc_relu_sig": lambda n, h: DenseWeighting(n, h, hidden_relu=False, output_relu=True),
    "fc_relu_fc_relu_sig": lambda n, h: DenseWeighting(n, h, hidden_relu=True, output_relu=True),
    "agreement": lambda n, h: AgreementWeighting(n, h),
    "label_confidence": lambda n, h: LabelConfidenceWeighting(n, h),
    "label_posterior": lambda n, h: LabelPosteriorWeighting(n, h),
}

#: The paper's Noisy Weighting (section 4, Table 2).
PAPER_WEIGHTING = "fc_fc_relu_sig"
#: The weighting of the project's default method (`PRESETS["metacleaner"]`).
DEFAULT_WEIGHTING = "label_posterior"


def get_weighting(name: str | Weighting, subset_size: int, hidden_units: int = 384) -> Weighting:
    """Returns the Noisy Weighting layer called `name`.

    Args:
        name: one of `WEIGHTINGS` (`"constant"`, `"attention_sig"`,
            `"attention_exp"`, `"fc_fc_sig"`, `"fc_fc_relu_sig"`,
            `"fc_relu_fc_relu_sig"`, `"agreement"`, `"label_confidence"`,
            `"label_posterior"`), or a `Weighting` instance, returned as is.
        subset_size: int. N.
        hidden_units: int. Hidden width where the weighting has one.

    Returns:
        A `Weighting` layer.

    Example:

    >>> get_weighting("fc_fc_relu_sig", subset_size=4).alpha_min
    0.5
    """
    if isinstance(name, Weighting):
        return name
    if name not in WEIGHTINGS:
        raise ValueError(
            f"Unknown weighting {name!r}; expected one of {sorted(WEIGHTINGS)} "
            "or a `keras_metacleaner.layers.Weighting` instance."
        )
    return WEIGHTINGS[name](subset_size, hidden_units)


def __getattr__(name: str) -> Any:
    # `WarmupWeighting` lived here until it moved to keras_metacleaner.experimental;
    # resolved lazily (the experimental module imports this one).
    if name == "WarmupWeighting":
        import warnings

        from keras_metacleaner.experimental.warmup import WarmupWeighting

        warnings.warn(
            "WarmupWeighting moved to keras_metacleaner.experimental.",
            DeprecationWarning,
            stacklevel=2,
        )
        return WarmupWeighting
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
