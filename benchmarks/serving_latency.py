"""Serving latency: the exported SavedModel against Keras `predict_on_batch`.

    python benchmarks/serving_latency.py [--backbone=small_cnn] [--repeats=200]

Exports a MetaCleanerModel's classifier, loads it with `tf.saved_model.load`
and times, on the same inputs and interleaved call by call (the order
alternates, so drifts in machine load hit both sides alike):

- `keras`: `inference_model().predict_on_batch(x)`,
- `savedmodel`: `loaded.signatures["serving_default"](images=x)`,
- `savedmodel_uint8` and `savedmodel_bytes` (PNG decoding in the graph) for
  reference.

Latency does not depend on the weights, so the model is not trained. Prints a
table of p50 / p99 in milliseconds for batch 1 and 32 and writes
benchmarks/out/serving_latency.json.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

# This checkout's library, not the installed (editable) one.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras_metacleaner as kmc  # noqa: E402
from keras_metacleaner.training.results import write_json_atomic  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("backbone", "small_cnn", "Backbone name (see kmc.models.BACKBONES).")
flags.DEFINE_list("image_shape", ["28", "28", "1"], "H,W,C of the images.")
flags.DEFINE_list("batch_sizes", ["1", "32"], "Batch sizes to time.")
flags.DEFINE_integer("repeats", 200, "Timed calls per method and batch size.")
flags.DEFINE_integer("warmup", 20, "Untimed calls first (tracing, caches).")
flags.DEFINE_integer("seed", 0, "Seed of the model and the inputs.")
flags.DEFINE_string(
    "output",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "out", "serving_latency.json"),
    "Where to write the JSON results.",
)


def _timed(fn) -> float:
    start = time.perf_counter()
    result = fn()
    # Make sure the work is done, not just dispatched.
    for value in result.values() if isinstance(result, dict) else [result]:
        np.asarray(value)
    return (time.perf_counter() - start) * 1e3


def _stats(samples: list[float]) -> dict:
    samples = np.asarray(samples)
    return {
        "p50_ms": float(np.percentile(samples, 50)),
        "p99_ms": float(np.percentile(samples, 99)),
        "mean_ms": float(samples.mean()),
        "calls": int(samples.size),
    }


def benchmark(model, loaded, batch_size: int, image_shape, rng) -> dict:
    images = rng.integers(0, 256, (batch_size, *image_shape), dtype=np.uint8)
    as_float = images.astype("float32")
    float_tensor = tf.constant(as_float)
    uint8_tensor = tf.constant(images)
    pngs = tf.constant([tf.io.encode_png(image).numpy() for image in images])
    classifier = model.inference_model()
    methods = {
        "keras": lambda: classifier.predict_on_batch(as_float),
        "savedmodel": lambda: loaded.signatures["serving_default"](images=float_tensor),
        "savedmodel_uint8": lambda: loaded.signatures["serving_uint8"](images=uint8_tensor),
        "savedmodel_bytes": lambda: loaded.signatures["serving_bytes"](image_bytes=pngs),
    }
    reference = classifier.predict_on_batch(as_float)
    exported = loaded.signatures["serving_default"](images=float_tensor)["probabilities"]
    max_abs_diff = float(np.abs(np.asarray(exported) - reference).max())

    for _ in range(FLAGS.warmup):
        for fn in methods.values():
            fn()
    samples = {name: [] for name in methods}
    names = list(methods)
    for repeat in range(FLAGS.repeats):
        # Alternate the order so neither side always runs on a warm cache.
        for name in names if repeat % 2 == 0 else reversed(names):
            samples[name].append(_timed(methods[name]))
    return {
        "batch_size": batch_size,
        "max_abs_diff_vs_keras": max_abs_diff,
        **{name: _stats(values) for name, values in samples.items()},
    }


def main(argv):
    del argv
    image_shape = tuple(int(d) for d in FLAGS.image_shape)
    keras.utils.set_random_seed(FLAGS.seed)
    rng = np.random.default_rng(FLAGS.seed)
    backbone = kmc.models.get_backbone(FLAGS.backbone, image_shape)
    model = kmc.MetaCleanerModel(backbone, num_classes=10, subset_size=4, seed=FLAGS.seed)
    with tempfile.TemporaryDirectory() as base:
        path = kmc.export.export_for_serving(model, base)
        loaded = tf.saved_model.load(path)
        rows = [benchmark(model, loaded, int(b), image_shape, rng) for b in FLAGS.batch_sizes]

    methods = ("keras", "savedmodel", "savedmodel_uint8", "savedmodel_bytes")
    print(f"backbone={FLAGS.backbone} image_shape={image_shape} repeats={FLAGS.repeats}")
    print(f"{'batch':>5}  {'method':<18}{'p50 ms':>9}{'p99 ms':>9}{'vs keras p50':>14}")
    for row in rows:
        for method in methods:
            ratio = row[method]["p50_ms"] / row["keras"]["p50_ms"]
            print(
                f"{row['batch_size']:>5}  {method:<18}{row[method]['p50_ms']:>9.3f}"
                f"{row[method]['p99_ms']:>9.3f}{ratio:>13.2f}x"
            )
    print("max |SavedModel - Keras| probabilities:", max(r["max_abs_diff_vs_keras"] for r in rows))
    write_json_atomic(
        FLAGS.output,
        {
            "benchmark": "serving_latency",
            "command": "python benchmarks/serving_latency.py "
            + " ".join(
                f"--{k}={v}"
                for k, v in FLAGS.flag_values_dict().items()
                if k in ("backbone", "repeats", "warmup", "seed")
            ),
            "backbone": FLAGS.backbone,
            "image_shape": list(image_shape),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
            "results": rows,
        },
    )
    print(f"wrote {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
