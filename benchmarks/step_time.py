"""Training-step time of MetaCleanerModel against a plain Keras classifier.

Both models use the same backbone architecture and see the same number of
images per step (K·N): the plain classifier a batch of K·N single images, the
MetaCleanerModel K subsets of N. Steps run through `train_on_batch` (the
compiled Keras train function, the same path `fit` takes) on tensors already
in memory, so only the step itself is timed. The two models alternate inside
every repeat so that drift of this shared machine hits both alike; the median
over repeats of the mean step time is reported.

    .venv/bin/python benchmarks/step_time.py                 # short CPU run
    .venv/bin/python benchmarks/step_time.py --repeats 7 --steps 5 \\
        --resnet_images 32 --configs resnet50_224,resnet50_64

Prints a table and writes benchmarks/out/step_time.json. `--profile` adds a
breakdown of the MetaCleaner step (backbone only, backbone + cleaner, ...)
for each configuration.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # this checkout's library, not the installed one

import keras_metacleaner as kmc  # noqa: E402
from keras_metacleaner.training.results import write_json_atomic  # noqa: E402

SEED = 0
SUBSET_SIZE = 4


def _configs(args) -> dict:
    """name -> (backbone factory, image shape, images per step)."""
    return {
        "resnet50_224": (
            lambda: kmc.models.resnet50((224, 224, 3)),
            (224, 224, 3),
            args.resnet_images,
        ),
        "resnet50_64": (
            lambda: kmc.models.resnet50((64, 64, 3)),
            (64, 64, 3),
            args.resnet64_images,
        ),
        "small_cnn_28": (
            lambda: kmc.models.small_cnn((28, 28, 1)),
            (28, 28, 1),
            args.small_images,
        ),
    }


def _compile(model, learning_rate=0.01):
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate, momentum=0.9),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def plain_classifier(backbone, num_classes: int) -> keras.Model:
    """The baseline: backbone -> Dense -> softmax on single images."""
    images = keras.Input(backbone.input_shape[1:])
    logits = keras.layers.Dense(num_classes)(backbone(images))
    outputs = keras.layers.Activation("softmax", dtype="float32")(logits)
    return _compile(keras.Model(images, outputs, name="plain"))


def metacleaner(backbone, num_classes: int, weighting: str) -> kmc.MetaCleanerModel:
    model = kmc.MetaCleanerModel(
        backbone, num_classes=num_classes, subset_size=SUBSET_SIZE, weighting=weighting, seed=SEED
    )
    return _compile(model)


def _step_seconds(model, x, y, steps: int) -> tuple[float, float]:
    """Mean wall-clock and process-CPU seconds of one training step."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        model.train_on_batch(x, y)  # returns NumPy logs: a sync point
    return (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps


def _float_ops(fn) -> int:
    """Floating-point operations in the graph of `fn` (TF's registered op statistics)."""
    graph = tf.function(fn).get_concrete_function().graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return int(tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops)


def _timed(fn, steps: int) -> float:
    fn = tf.function(fn)
    tf.nest.map_structure(lambda t: t.numpy(), fn())  # trace and warm up
    start = time.perf_counter()
    for _ in range(steps):
        tf.nest.map_structure(lambda t: t.numpy(), fn())
    return (time.perf_counter() - start) / steps


def _profile(plain, metacleaners: dict, x_plain, y_plain, x_sets, y_sets, steps: int) -> dict:
    """Where a MetaCleaner step's time goes, against the plain step.

    Counts the floating-point operations of forward + backward (a number the
    load of a shared machine cannot blur) and times the pieces that only the
    MetaCleaner step has: the in-subset shuffle and the cleaner on top of the
    backbone's features.
    """

    def plain_step():
        with tf.GradientTape() as tape:
            probabilities = plain(x_plain, training=True)
            loss = tf.reduce_mean(
                keras.losses.sparse_categorical_crossentropy(y_plain, probabilities)
            )
        return tape.gradient(loss, plain.trainable_variables)

    def metacleaner_step(model):
        def step():
            with tf.GradientTape() as tape:
                shuffled = model._shuffle_within_subsets(x_sets)
                probabilities, _, _ = model._forward_subsets(shuffled, y_sets, training=True)
                loss = keras.losses.sparse_categorical_crossentropy(y_sets, probabilities)
                loss = tf.reduce_mean(loss)
            gradients = tape.gradient(loss, model.trainable_variables)
            return [g for g in gradients if g is not None]

        return step

    plain_flops = _float_ops(plain_step)
    profile = {"plain_float_ops": plain_flops, "weightings": {}}
    for key, model in metacleaners.items():
        flops = _float_ops(metacleaner_step(model))
        features = model._subset_features(x_sets, training=False)

        def cleaner_only(model=model, features=features):
            with tf.GradientTape() as tape:
                tape.watch(features)
                member_logits = model.classifier(features)
                log_probs = tf.nn.log_softmax(member_logits, axis=-1)
                scores = model.weighting.class_scores(log_probs, y_sets)
                clean, _ = model.cleaner(features, scores)
                loss = tf.reduce_sum(model.classifier(clean))
            return tape.gradient(loss, [features, *model.cleaner.trainable_variables])

        profile["weightings"][key] = {
            "float_ops": flops,
            "float_ops_ratio_over_plain": flops / plain_flops,
            "shuffle_s": _timed(lambda m=model: m._shuffle_within_subsets(x_sets), steps),
            "cleaner_fwd_bwd_s": _timed(cleaner_only, steps),
        }
    return profile


def run_config(name, factory, image_shape, images, args) -> dict:
    if images % SUBSET_SIZE:
        raise ValueError(f"{name}: images per step must be a multiple of N={SUBSET_SIZE}.")
    groups = images // SUBSET_SIZE
    rng = np.random.default_rng(SEED)
    x_sets = rng.uniform(0, 255, (groups, SUBSET_SIZE, *image_shape)).astype("float32")
    y_sets = rng.integers(0, args.num_classes, groups).astype("int32")
    # The same images and labels for both models, flattened for the plain one.
    x_plain = tf.constant(x_sets.reshape(images, *image_shape))
    y_plain = tf.constant(np.repeat(y_sets, SUBSET_SIZE))
    x_sets, y_sets = tf.constant(x_sets), tf.constant(y_sets)

    keras.utils.set_random_seed(SEED)
    models = {"plain": (plain_classifier(factory(), args.num_classes), x_plain, y_plain)}
    for weighting in args.weightings:
        model = metacleaner(factory(), args.num_classes, weighting)
        models[f"metacleaner[{weighting}]"] = (model, x_sets, y_sets)
    for model, x, y in models.values():  # trace and warm up outside the clock
        for _ in range(args.warmup):
            model.train_on_batch(x, y)
    # Enough steps per repeat that each timing spans --min_seconds (small
    # models step in milliseconds); the same count for every model.
    first = _step_seconds(models["plain"][0], x_plain, y_plain, 1)[0]
    steps = max(args.steps, int(np.ceil(args.min_seconds / max(first, 1e-6))))

    samples = {key: [] for key in models}
    cpu_samples = {key: [] for key in models}
    for repeat in range(args.repeats):
        keys = list(models) if repeat % 2 == 0 else list(reversed(models))
        for key in keys:
            model, x, y = models[key]
            wall, cpu = _step_seconds(model, x, y, steps)
            samples[key].append(wall)
            cpu_samples[key].append(cpu)
    medians = {key: statistics.median(values) for key, values in samples.items()}
    cpu_medians = {key: statistics.median(values) for key, values in cpu_samples.items()}
    result = {
        "config": name,
        "image_shape": list(image_shape),
        "images_per_step": images,
        "subsets_per_step_K": groups,
        "subset_size_N": SUBSET_SIZE,
        "repeats": args.repeats,
        "steps_per_repeat": steps,
        "median_step_s": medians,
        "median_step_cpu_s": cpu_medians,
        "all_step_s": samples,
        "ratio_over_plain": {
            key: medians[key] / medians["plain"] for key in medians if key != "plain"
        },
        "cpu_ratio_over_plain": {
            key: cpu_medians[key] / cpu_medians["plain"] for key in cpu_medians if key != "plain"
        },
    }
    if args.profile:
        metacleaners = {key: m for key, (m, _, _) in models.items() if key != "plain"}
        result["profile"] = _profile(
            models["plain"][0], metacleaners, x_plain, y_plain, x_sets, y_sets, steps
        )
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="resnet50_224,resnet50_64,small_cnn_28")
    parser.add_argument("--weightings", default="label_confidence,fc_fc_relu_sig")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per repeat")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--min_seconds", type=float, default=1.0, help="least time one repeat of one model runs"
    )
    parser.add_argument("--resnet_images", type=int, default=16, help="K*N at 224 px")
    parser.add_argument("--resnet64_images", type=int, default=32, help="K*N at 64 px")
    parser.add_argument("--small_images", type=int, default=128, help="K*N for the small CNN")
    parser.add_argument("--num_classes", type=int, default=10)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--out", default=os.path.join(HERE, "out", "step_time.json"))
    args = parser.parse_args(argv)

    configs = _configs(args)
    names = [c for c in args.configs.split(",") if c]
    unknown = [c for c in names if c not in configs]
    if unknown:
        parser.error(f"--configs: unknown {unknown}; expected some of {sorted(configs)}")
    args.weightings = [w for w in args.weightings.split(",") if w]
    bad = [w for w in args.weightings if w not in kmc.layers.WEIGHTINGS]
    if bad or not args.weightings:
        parser.error(
            f"--weightings: unknown {bad}; expected some of {sorted(kmc.layers.WEIGHTINGS)}"
        )
    for flag in ("repeats", "steps", "resnet_images", "resnet64_images", "small_images"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} must be >= 1, got {getattr(args, flag)}")

    results = []
    for name in names:
        factory, shape, images = configs[name]
        results.append(run_config(name, factory, shape, images, args))
        print(f"done {name}", file=sys.stderr, flush=True)

    header = (
        f"{'config':<14} {'K*N':>4} {'model':<30} {'wall s/step':>11} {'ratio':>6}"
        f" {'cpu s/step':>10} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        for key, seconds in r["median_step_s"].items():
            ratio = r["ratio_over_plain"].get(key)
            cpu_ratio = r["cpu_ratio_over_plain"].get(key)
            print(
                f"{r['config']:<14} {r['images_per_step']:>4} {key:<30} {seconds:11.4f} "
                + (f"{ratio:6.3f}" if ratio is not None else "     -")
                + f" {r['median_step_cpu_s'][key]:10.4f} "
                + (f"{cpu_ratio:6.3f}" if cpu_ratio is not None else "     -")
            )
        for key, piece in r.get("profile", {}).get("weightings", {}).items():
            print(
                f"  {key}: float ops x{piece['float_ops_ratio_over_plain']:.4f} of plain, "
                f"shuffle {piece['shuffle_s'] * 1e3:.2f} ms, "
                f"cleaner fwd+bwd {piece['cleaner_fwd_bwd_s'] * 1e3:.2f} ms"
            )

    write_json_atomic(
        args.out,
        {
            "benchmark": "step_time",
            "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
            "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "results": results,
        },
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
