"""Throughput of group_by_class against a plain shuffle().batch(), and its memory.

Both pipelines run the same decode + augment work and emit the same number of
images per step (K·N); they alternate within each repeat, and the median of
the repeats is reported. Two data sets: Fashion-MNIST in memory, and a folder
of JPEGs written to a temporary directory. A subprocess streams a 1,000,000
example label-only dataset of 1,000 classes through the grouping and reports
the growth of its peak RSS.

    .venv/bin/python benchmarks/pipeline_throughput.py [--repeats 5] [--quick]

Prints the ratios and writes benchmarks/out/pipeline_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import keras_metacleaner as kmc  # noqa: E402

SUBSET_SIZE, GROUPS = 4, 32
SEED = 0


def plain_pipeline(dataset, augment, shuffle_buffer=10_000):
    """The baseline: shuffle, the same augment, batches of K·N single images."""
    ds = dataset.shuffle(shuffle_buffer, seed=SEED, reshuffle_each_iteration=True)
    ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(SUBSET_SIZE * GROUPS, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def grouped_pipeline(dataset, augment, **kwargs):
    return kmc.data.group_by_class(
        dataset, SUBSET_SIZE, GROUPS, seed=SEED, augment=augment, **kwargs
    )


def images_per_second(dataset) -> tuple[float, float]:
    """Images per second over one whole epoch, start-up included: (wall, CPU).

    Start-up counts: the plain pipeline fills its shuffle buffer (decoding
    up to `shuffle_buffer` images) before its first batch. The CPU rate
    (images per second of this process's CPU time, all threads) is less
    sensitive to other jobs on a shared machine than the wall-clock one.
    """
    start, cpu_start = time.perf_counter(), time.process_time()
    images = 0
    for x, _ in dataset:
        images += int(np.prod(x.shape[:-3]))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return images / wall, images / cpu


def compare(name: str, pipelines: dict, repeats: int) -> dict:
    """Runs the pipelines in turn, `repeats` times; medians and paired ratios."""
    rates = {key: [] for key in pipelines}
    cpu_rates = {key: [] for key in pipelines}
    for _ in range(repeats):
        for key, dataset in pipelines.items():  # interleaved: drift hits all alike
            wall, cpu = images_per_second(dataset)
            rates[key].append(wall)
            cpu_rates[key].append(cpu)
    medians = {key: statistics.median(values) for key, values in rates.items()}
    result = {
        "data": name,
        "images_per_step": SUBSET_SIZE * GROUPS,
        "repeats": repeats,
        "images_per_second_median": medians,
        "images_per_second_all": rates,
        "images_per_cpu_second_median": {k: statistics.median(v) for k, v in cpu_rates.items()},
    }
    for key, label in (("group_by_class", "grouped"), ("group_by_class_streaming", "streaming")):
        if key not in rates:
            continue
        # Ratios of runs next to each other in time share the machine's load.
        paired = [a / b for a, b in zip(rates[key], rates["plain"])]
        paired_cpu = [a / b for a, b in zip(cpu_rates[key], cpu_rates["plain"])]
        result[f"ratio_{label}_over_plain"] = medians[key] / medians["plain"]
        result[f"ratio_{label}_over_plain_paired_median"] = statistics.median(paired)
        result[f"ratio_{label}_over_plain_cpu"] = statistics.median(paired_cpu)
    return result


def write_jpegs(root: str, count: int, classes: int = 10, size: int = 64) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, size)[None, :, None]
    for i in range(count):
        directory = os.path.join(root, f"class_{i % classes}")
        os.makedirs(directory, exist_ok=True)
        noise = rng.normal(0, 25, (size, size, 3))
        pixels = np.clip(ramp * rng.uniform(0.3, 1.0, 3) + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(os.path.join(directory, f"{i}.jpg"), quality=90)


def _status_bytes(field: str) -> int:
    """A memory field of /proc/self/status (VmRSS, VmHWM), in bytes."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not found in /proc/self/status")


def memory_child(n: int, classes: int, path: str) -> None:
    """Runs in a subprocess: peak RSS growth while grouping a label-only stream.

    VmHWM is the peak RSS of this address space (exec resets it);
    `getrusage().ru_maxrss` would not do here, as Linux carries the parent's
    peak over the fork.
    """
    stream = tf.data.Dataset.range(n).map(
        lambda i: (tf.zeros([1], tf.float32), tf.cast((i * 7_919 + i // 997) % classes, tf.int32))
    )
    in_memory = {"streaming": False, "index": True}[path]
    baseline = _status_bytes("VmRSS")
    start = time.perf_counter()
    ds = kmc.data.group_by_class(stream, SUBSET_SIZE, GROUPS, seed=SEED, in_memory=in_memory)
    batches = sum(1 for _ in ds)
    peak = _status_bytes("VmHWM")
    print(
        json.dumps(
            {
                "path": path,
                "examples": n,
                "classes": classes,
                "batches": batches,
                "seconds": time.perf_counter() - start,
                "baseline_rss_mb": baseline / 2**20,
                "peak_rss_mb": peak / 2**20,
                "peak_rss_growth_mb": (peak - baseline) / 2**20,
            }
        )
    )


def write_json(path: str, payload: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = f"{path}.tmp{os.getpid()}"
    with open(temporary, "w") as handle:
        json.dump(payload, handle, indent=2)
    os.replace(temporary, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="fewer steps, smaller data")
    parser.add_argument("--jpegs", type=int, default=3000)
    parser.add_argument("--memory-examples", type=int, default=1_000_000)
    parser.add_argument("--out", default=os.path.join(HERE, "out", "pipeline_throughput.json"))
    parser.add_argument("--memory-child", choices=["streaming", "index"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_examples, 1000, args.memory_child)
        return
    tf.random.set_seed(SEED)
    results = {"command": " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:])}

    train, _, info = kmc.data.load("fashion_mnist")
    augment = kmc.data.train_augment(28)
    results["fashion_mnist_in_memory"] = compare(
        "fashion_mnist (60k, in memory, augment 28->32->crop 28 + flip)",
        {
            "plain": plain_pipeline(train, augment),
            "group_by_class": grouped_pipeline(train, augment),
            "group_by_class_streaming": grouped_pipeline(train, augment, in_memory=False),
        },
        args.repeats,
    )

    with tempfile.TemporaryDirectory() as root:
        count = 600 if args.quick else args.jpegs
        write_jpegs(root, count)
        train, _, info = kmc.data.load(f"folder:{root}?test_fraction=0.05", seed=SEED)
        augment = kmc.data.train_augment(56)
        results["jpeg_folder"] = compare(
            f"folder of {count} 64x64 JPEGs (decode + augment 56->64->crop 56 + flip)",
            {
                "plain": plain_pipeline(train, augment),
                "group_by_class": grouped_pipeline(train, augment),
            },
            args.repeats,
        )

    examples = 100_000 if args.quick else args.memory_examples
    results["memory"] = {}
    for path in ("streaming", "index"):
        child = subprocess.run(
            [
                sys.executable,
                os.path.abspath(__file__),
                f"--memory-child={path}",
                f"--memory-examples={examples}",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        results["memory"][path] = json.loads(child.stdout.strip().splitlines()[-1])
        results["memory"][path]["limit_mb"] = 200

    for key in ("fashion_mnist_in_memory", "jpeg_folder"):
        r = results[key]
        rates = ", ".join(f"{k} {v:,.0f}" for k, v in r["images_per_second_median"].items())
        print(f"{r['data']}: images/s (median of {r['repeats']}): {rates}")
        for label, title in (("grouped", "group_by_class"), ("streaming", "streaming path")):
            if f"ratio_{label}_over_plain" in r:
                print(
                    f"  ratio {title} / plain: {r[f'ratio_{label}_over_plain']:.2f}x "
                    f"(medians), {r[f'ratio_{label}_over_plain_paired_median']:.2f}x (median of "
                    f"paired runs), {r[f'ratio_{label}_over_plain_cpu']:.2f}x (CPU time)"
                )
    for m in results["memory"].values():
        print(
            f"memory, {m['path']} path: {m['examples']:,} label-only examples, {m['classes']} "
            f"classes: peak RSS growth {m['peak_rss_growth_mb']:.1f} MB "
            f"(limit {m['limit_mb']} MB), "
            f"{m['batches']} batches in {m['seconds']:.1f} s"
        )
    write_json(args.out, results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
