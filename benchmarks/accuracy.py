"""Accuracy of MetaCleaner against plain training on Fashion-MNIST with label noise.

Every run uses the same backbone (small CNN), optimizer, images per step
(K·N), steps per epoch, epochs and seed; only the method differs. Results are
appended to a JSONL file (one line a run, so a long sweep can be resumed), and
`--report` renders the mean and standard deviation over seeds as Markdown.

Examples:

    # the main comparison (3 seeds, 5 noise rates and pairflip)
    python benchmarks/accuracy.py --suite main
    # Table 2 / Table 3 ablations, subset sizes
    python benchmarks/accuracy.py --suite weightings
    python benchmarks/accuracy.py --suite subset_size
    # render tables from what has been measured
    python benchmarks/accuracy.py --report
    # the smoke run of `make test`
    python benchmarks/accuracy.py --quick --out /tmp/acc.jsonl
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import multiprocessing as mp
import os
import re
import sys
import time
from collections.abc import Sequence

import numpy as np

OUT = os.path.join(os.path.dirname(__file__), "out", "accuracy.jsonl")

# name -> MetaCleanerModel keyword arguments (None: plain training).
METHODS = {
    "baseline": None,
    "constant": dict(weighting="constant"),
    "attention_sig": dict(weighting="attention_sig"),
    "attention_exp": dict(weighting="attention_exp"),
    "fc_fc_sig": dict(weighting="fc_fc_sig"),
    "fc_fc_relu_sig": dict(weighting="fc_fc_relu_sig"),
    "fc_relu_fc_relu_sig": dict(weighting="fc_relu_fc_relu_sig"),
    "agreement": dict(weighting="agreement"),
    # Remedies tried against the collapse of the paper's weighting (issue #6, 3).
    **{
        f"fc_fc_relu_sig.{name}": dict(weighting="fc_fc_relu_sig", weighting_args=args)
        for name, args in {
            "bias1": {"output_bias": 1.0},
            "leaky": {"negative_slope": 0.1},
            "norm": {"normalize_inputs": True},
            "stopgrad": {"stop_input_gradient": True},
            "t4": {"temperature": 4.0},
            "all": {
                "output_bias": 1.0,
                "negative_slope": 0.1,
                "normalize_inputs": True,
                "stop_input_gradient": True,
            },
        }.items()
    },
    # The paper's weighting held at the plain mean for the first epochs
    # (kmc.layers.WarmupWeighting + kmc.training.WeightingWarmup).
    **{
        f"fc_fc_relu_sig.warmup{epochs}": dict(weighting="fc_fc_relu_sig", warmup_epochs=epochs)
        for epochs in (5, 10)
    },
    "loss_reweight:fc_fc_relu_sig": dict(weighting="fc_fc_relu_sig", mode="loss_reweight"),
    "loss_reweight:label_confidence": dict(
        weighting="label_confidence", weighting_args={"relative": False}, mode="loss_reweight"
    ),
}

# label_<confidence|posterior>[_rel][_g<gamma>][_m<flip classes>][_p<min clean prior>][_f<floor>]
# [+[raw]member[<weight>]][+subset<max|mean>]:
# the label-scoring weightings' options spelled in the name ("+member" alone is weight
# 1.0; "raw": member losses weighted by α itself, not N·α/Σα; "+subsetmean":
# each subset's hallucinated loss weighted by its mean α; "+subsetmaxn": by its
# largest α over the batch's mean of those).
LABEL_SCORE_NAME = re.compile(
    r"label_(?P<kind>confidence|posterior)(?P<relative>_rel)?(?:_g(?P<gamma>[\d.]+))?"
    r"(?:_m(?P<flip>\d+))?(?:_p(?P<min_prior>[\d.]+))?(?:_f(?P<floor>[\d.]+))?"
    r"(?:\+(?P<raw>raw)?member(?P<member>[\d.]+)?(?P<has_member>))?"
    r"(?:\+subset(?P<subset>max|mean)(?P<subset_norm>n)?)?"
)


def method_kwargs(name: str) -> dict | None:
    """MetaCleanerModel keyword arguments of a method name (None: plain training).

    Returns a fresh dict each call, so a caller may consume it (e.g. pop
    `weighting_args`) without changing `METHODS`.

    Raises:
        KeyError: the name is neither in `METHODS` nor a label_confidence /
            label_posterior spelling.
    """
    if name in METHODS:
        return copy.deepcopy(METHODS[name])
    match = LABEL_SCORE_NAME.fullmatch(name)
    if match is None:
        raise KeyError(name)
    # Every option spelled out, so a name keeps its meaning when the
    # library's defaults move (rows in docs/data/ were run under older ones).
    args = {"relative": bool(match["relative"])}
    if match["gamma"]:
        if match["kind"] == "posterior":
            raise KeyError(f"{name}: label_posterior has no gamma")
        args["gamma"] = float(match["gamma"])
    if (match["flip"] or match["min_prior"]) and match["kind"] != "posterior":
        raise KeyError(f"{name}: only label_posterior has flip classes (_m) and _p")
    if match["kind"] == "posterior":
        # No _m: wrong labels spread over every other class (C - 1).
        args["flip_classes"] = int(match["flip"]) if match["flip"] else None
        # No _p: the clean share's estimate bounded below by 0.01.
        args["min_clean_prior"] = float(match["min_prior"]) if match["min_prior"] else 0.01
    if match["floor"]:
        args["floor"] = float(match["floor"])
    kwargs = dict(weighting=f"label_{match['kind']}", weighting_args=args)
    if match["has_member"] is not None:
        kwargs["member_loss_weight"] = float(match["member"] or 1.0)
        kwargs["normalize_member_weights"] = not match["raw"]
    if match["subset"]:
        kwargs["subset_loss_weights"] = f"{match['subset']}_alpha"
        kwargs["normalize_subset_weights"] = bool(match["subset_norm"])
    return kwargs


#: The library's defaults (label_posterior relative to the top class with one
#: flip class, member loss weighted by α itself, weight 1.0, each subset's
#: hallucinated loss weighted by its largest α), by their benchmark name.
DEFAULT_METHOD = "label_posterior_rel_m1_p0.5+rawmember+subsetmax"
#: The previous default (before label_posterior and subset weights).
LABEL_CONFIDENCE_METHOD = "label_confidence_rel+rawmember"

SUITES = {
    # (methods, noise settings, subset sizes)
    "main": (
        ["baseline", "constant", "fc_fc_relu_sig", LABEL_CONFIDENCE_METHOD, DEFAULT_METHOD],
        [("symmetric", r) for r in (0.0, 0.2, 0.4, 0.6, 0.8)] + [("pairflip", 0.45)],
        [4],
    ),
    "weightings": (
        [
            "constant",
            "attention_sig",
            "attention_exp",
            "fc_fc_sig",
            "fc_fc_relu_sig",
            "fc_relu_fc_relu_sig",
            "agreement",
            "label_confidence",
            "label_posterior_rel_m1_p0.5",
            LABEL_CONFIDENCE_METHOD,
            DEFAULT_METHOD,
            "loss_reweight:fc_fc_relu_sig",
            "loss_reweight:label_confidence",
        ],
        [("symmetric", 0.4)],
        [4],
    ),
    "subset_size": (
        [DEFAULT_METHOD],
        [("symmetric", r) for r in (0.2, 0.4, 0.6)],
        [1, 2, 3, 4, 5, 6],
    ),
}


def _arrays(dataset):
    images, labels = zip(*dataset.batch(10_000).as_numpy_iterator())
    return np.concatenate(images), np.concatenate(labels)


def _load_fashion_mnist(train_size: int, seed: int):
    import keras_metacleaner as kmc

    train, test, info = kmc.data.load("fashion_mnist")
    x_train, y_train = _arrays(train)
    x_test, y_test = _arrays(test)
    keep = np.random.default_rng(seed).permutation(len(y_train))[:train_size]
    return x_train[keep], y_train[keep].astype("int32"), x_test, y_test.astype("int32"), info


def run_one(config: dict) -> dict:
    """Trains one configuration and returns its measurements."""
    threads = config.get("threads", 1)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    import keras_metacleaner as kmc

    seed, n_subset, k = config["seed"], config["subset_size"], config["groups_per_batch"]
    keras.utils.set_random_seed(seed)
    x, y_clean, x_test, y_test, info = _load_fashion_mnist(config["train_size"], seed)
    if config["noise_rate"] > 0:
        y_noisy, flipped = kmc.data.add_label_noise(
            y_clean, config["noise_rate"], config["noise_type"], info.num_classes, seed=seed
        )
    else:
        y_noisy, flipped = y_clean.copy(), np.zeros(len(y_clean), bool)
    images_per_step = n_subset * k
    steps = len(y_noisy) // images_per_step
    epochs = config["epochs"]
    lr = config["learning_rate"]
    if config.get("lr_decay_epochs"):
        boundaries = [
            steps * e for e in range(config["lr_decay_epochs"], epochs, config["lr_decay_epochs"])
        ]
        lr = keras.optimizers.schedules.PiecewiseConstantDecay(
            boundaries, [config["learning_rate"] * 0.1**i for i in range(len(boundaries) + 1)]
        )
    backbone = kmc.models.small_cnn(info.image_shape)
    method = method_kwargs(config["method"])
    callbacks = []
    train = tf.data.Dataset.from_tensor_slices((x.astype("float32"), y_noisy))
    if method is None:
        model = kmc.training.plain_classifier(backbone, info.num_classes)
        data = train.shuffle(len(y_noisy), seed=seed, reshuffle_each_iteration=True)
        data = data.batch(images_per_step, drop_remainder=True)
    else:
        # The methods name their per-image loss; without one they are the paper's
        # pure hallucination, whatever the library's default.
        method = {"member_loss_weight": 0.0, "subset_loss_weights": None, **method}
        if "weighting_args" in method:
            weighting = kmc.layers.get_weighting(method["weighting"], n_subset)
            config_ = {**weighting.get_config(), **method.pop("weighting_args")}
            method["weighting"] = type(weighting).from_config(config_)
        if "warmup_epochs" in method:
            warmup_epochs = method.pop("warmup_epochs")
            method["weighting"] = kmc.layers.WarmupWeighting(method["weighting"], n_subset)
            callbacks.append(kmc.training.WeightingWarmup(warmup_epochs))
        model = kmc.MetaCleanerModel(backbone, info.num_classes, n_subset, seed=seed, **method)
        data = kmc.data.group_by_class(
            train, n_subset, k, seed=seed, num_classes=info.num_classes, in_memory=True
        )
    data = data.take(steps).prefetch(2)
    model.compile(
        optimizer=keras.optimizers.SGD(lr, momentum=0.9),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    start = time.time()
    history = model.fit(
        data,
        epochs=epochs,
        validation_data=(x_test.astype("float32"), y_test),
        validation_batch_size=1000,
        verbose=0,
        callbacks=callbacks,
    ).history
    seconds = time.time() - start
    classifier = model if method is None else model.inference_model()
    predicted = classifier.predict(x.astype("float32"), batch_size=1000, verbose=0).argmax(-1)
    accuracy = history["val_accuracy"]
    result = dict(
        config,
        best_accuracy=float(max(accuracy)),
        best_epoch=int(np.argmax(accuracy)) + 1,
        final_accuracy=float(accuracy[-1]),
        test_accuracy_curve=[float(a) for a in accuracy],
        realised_noise=float(flipped.mean()),
        commit=os.environ.get("BENCH_COMMIT", "unknown"),
        date=time.strftime("%Y-%m-%d"),
        flipped_fitted=float((predicted[flipped] == y_noisy[flipped]).mean())
        if flipped.any()
        else None,
        seconds_per_epoch=seconds / epochs,
    )
    if method is not None:
        for key in ("alpha_mean", "alpha_std", "alpha_floor"):
            result[key] = float(history[key][-1])
        probe = slice(0, min(5000, len(y_noisy)))
        if flipped.any() and n_subset > 1:
            scores = kmc.analysis.alpha_scores(model, x[probe], y_noisy[probe], draws=2, seed=seed)
            result["alpha_auroc"] = kmc.analysis.auroc(scores, ~flipped[probe])
    return result


def _key(config: dict) -> str:
    fields = ("method", "noise_type", "noise_rate", "subset_size", "seed", "epochs", "train_size")
    fields += ("lr_decay_epochs",)
    return json.dumps([config.get(f) for f in fields])


def _done(path: str) -> dict:
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return {_key(r): r for r in map(json.loads, f) if r}


def _append(path: str, result: dict) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    # One line a run, flushed whole: an interrupted sweep loses at most the run in flight.
    with open(path, "a") as f:
        f.write(json.dumps(result) + "\n")


def _noises(spec: str) -> list[tuple[str, float]]:
    """`"symmetric:0.4,pairflip:0.45"` -> `[("symmetric", 0.4), ("pairflip", 0.45)]`."""
    return [(kind, float(rate)) for kind, rate in (n.split(":") for n in spec.split(",") if n)]


def configs_for(args) -> list[dict]:
    methods, noises, sizes = SUITES[args.suite]
    if args.methods:
        methods = args.methods.split(",")
    if args.noise:
        noises = _noises(args.noise)
    if args.subset_sizes:
        sizes = [int(n) for n in args.subset_sizes.split(",")]
    configs = []
    for seed, (kind, rate), n_subset, method in itertools.product(
        range(args.seeds), noises, sizes, methods
    ):
        configs.append(
            dict(
                method=method,
                noise_type=kind,
                noise_rate=rate,
                subset_size=n_subset,
                groups_per_batch=args.images_per_step // n_subset,
                seed=seed,
                epochs=args.epochs,
                train_size=args.train_size,
                learning_rate=args.learning_rate,
                lr_decay_epochs=args.lr_decay_epochs,
                images_per_step=args.images_per_step,
            )
        )
    return configs


def report(
    path: str,
    methods: Sequence[str] = (),
    subset_sizes: Sequence[int] = (),
    lr_decay_epochs: int | None = None,
    noises: Sequence[tuple[str, float]] = (),
) -> str:
    """A Markdown table: mean ± std over seeds of each measured configuration.

    Args:
        path: the JSONL file of results.
        methods: keep only these methods (all when empty).
        subset_sizes: keep only these N (all when empty).
        lr_decay_epochs: keep only runs with this schedule (0: constant rate);
            all when None.
        noises: keep only these `(kind, rate)` settings (all when empty).

    Returns:
        The table, one row a configuration.
    """
    rows = {}
    for r in _done(path).values():
        if methods and r["method"] not in methods:
            continue
        if subset_sizes and r["subset_size"] not in subset_sizes:
            continue
        if lr_decay_epochs is not None and (r.get("lr_decay_epochs") or 0) != lr_decay_epochs:
            continue
        if noises and (r["noise_type"], r["noise_rate"]) not in noises:
            continue
        group = (
            r["noise_type"],
            r["noise_rate"],
            r["subset_size"],
            r["epochs"],
            r.get("lr_decay_epochs"),
            r["method"],
        )
        rows.setdefault(group, []).append(r)

    def stat(values, scale=100.0):
        values = [v for v in values if v is not None]
        if not values:
            return "–"
        values = np.asarray(values, float) * scale
        return (
            f"{values.mean():.2f} ± {values.std():.2f}" if len(values) > 1 else f"{values[0]:.2f}"
        )

    lines = [
        "| noise | N | epochs | lr decay | method | seeds | best-epoch acc | final acc "
        "| flipped fitted | α AUROC | α floor share |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for group in sorted(rows, key=lambda g: (g[0], g[1], g[3], str(g[4]), g[2], g[5])):
        rs = rows[group]
        kind, rate, n_subset, epochs, decay, method = group
        lines.append(
            f"| {kind} {rate:.0%} | {n_subset} | {epochs} | {decay or '–'} | {method} "
            f"| {len(rs)} | {stat([r['best_accuracy'] for r in rs])} "
            f"| {stat([r['final_accuracy'] for r in rs])} | "
            f"{stat([r.get('flipped_fitted') for r in rs])} | "
            f"{stat([r.get('alpha_auroc') for r in rs], 1.0)} | "
            f"{stat([r.get('alpha_floor') for r in rs], 1.0)} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--suite", choices=sorted(SUITES), default="main")
    parser.add_argument(
        "--methods", default="", help="comma-separated subset of the suite's methods"
    )
    parser.add_argument(
        "--noise", default="", help="comma-separated KIND:RATE, e.g. symmetric:0.4,pairflip:0.45"
    )
    parser.add_argument("--subset_sizes", default="", help="comma-separated N values")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--train_size", type=int, default=10000)
    parser.add_argument("--images_per_step", type=int, default=128)
    parser.add_argument("--learning_rate", type=float, default=0.02)
    parser.add_argument(
        "--lr_decay_epochs", type=int, default=0, help="divide lr by 10 every so many epochs"
    )
    parser.add_argument(
        "--jobs", type=int, default=2, help="runs in parallel, one thread each (0: in this process)"
    )
    parser.add_argument("--out", default=OUT)
    parser.add_argument(
        "--report",
        action="store_true",
        help="print the table of --out and exit; --methods, --noise, --subset_sizes and "
        "--lr_decay_epochs filter it",
    )
    parser.add_argument("--quick", action="store_true", help="one tiny run a method (smoke test)")
    args = parser.parse_args(argv)
    for name in filter(None, args.methods.split(",")):
        try:
            method_kwargs(name)
        except KeyError:
            parser.error(
                f"--methods: unknown method {name!r}; expected one of {sorted(METHODS)} or "
                "label_confidence[_rel][_g<gamma>][_f<floor>][+[raw]member[<weight>]]"
            )
    if args.report:
        print(
            report(
                args.out,
                methods=[m for m in args.methods.split(",") if m],
                subset_sizes=[int(n) for n in args.subset_sizes.split(",") if n],
                lr_decay_epochs=args.lr_decay_epochs,
                noises=_noises(args.noise),
            )
        )
        return 0
    if args.quick:
        args.seeds, args.epochs, args.train_size = 1, 2, 512
        args.images_per_step = 32
    configs = configs_for(args)
    if args.quick:
        configs = [c for c in configs if c["noise_rate"] == 0.4 and c["noise_type"] == "symmetric"]
    done = _done(args.out)
    todo = [c for c in configs if _key(c) not in done]
    print(f"{len(configs)} runs, {len(configs) - len(todo)} already in {args.out}", flush=True)
    if args.jobs == 0:
        results = map(run_one, todo)
    else:
        # Fresh processes: TF's thread settings only apply before it starts, and
        # every run begins from the same state.
        pool = mp.get_context("spawn").Pool(args.jobs, maxtasksperchild=1)
        results = pool.imap_unordered(run_one, todo)
    for result in results:
        _append(args.out, result)
        print(
            f"{result['method']:>32} {result['noise_type']} {result['noise_rate']:.2f} "
            f"N={result['subset_size']} seed={result['seed']}: "
            f"best {result['best_accuracy']:.4f} final {result['final_accuracy']:.4f} "
            f"auroc {result.get('alpha_auroc')}",
            flush=True,
        )
    print(report(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
