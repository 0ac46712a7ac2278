"""Images per second of a whole training epoch: plain training against MetaCleaner.

Each measurement trains one model for two epochs in its own subprocess (so the
peak RSS it reports is its own) and times the second: the input pipeline from
`keras_metacleaner.data.load` and the training step together, as `fit` runs
them. Plain training is the recipe's baseline (backbone -> Dense -> softmax on
a shuffled batch of K·N single images); MetaCleaner is the project's default
method on `group_by_class` batches of K subsets of N images: the same images
per step, the same backbone, optimizer and number of steps. Two data sets:
Fashion-MNIST in memory, and a generated folder of JPEG files read through the
`folder:` source (decoded every epoch). The measurements of one repeat run
one after the other (data sets interleaved, the method order alternating), and
the report gives the median of the repeats, with process CPU time per image
beside wall time: on a shared machine the wall clock moves by ±15%, the CPU
time per image much less.

    .venv/bin/python benchmarks/epoch_throughput.py                  # ~10 min on 2 cores
    .venv/bin/python benchmarks/epoch_throughput.py --repeats=5 \\
        --results_md=docs/results.md                                # also update the docs
    .venv/bin/python benchmarks/epoch_throughput.py --tiny --out=/tmp/e.json   # format check

Prints a Markdown table and the ratios MetaCleaner / plain (goals: >= 0.97x the
plain throughput in CPU time per image, <= 1.05x its peak memory) and writes
docs/data/epoch_throughput.json. The parent process imports no TensorFlow, so
what a child inherits from it is small.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)  # this checkout's library, not the installed (editable) one

SEED = 0
SUBSET_SIZE = 4
METHODS = ("plain", "metacleaner")
DATASETS = ("fashion_mnist", "jpeg_folder")
# Goals of issue 15 for MetaCleaner against plain training.
GOAL_CPU_THROUGHPUT = 0.97
GOAL_PEAK_MEMORY = 1.05


# -------------------------------------------------------------------- child
def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _models(num_classes: int, image_shape):
    import keras

    import keras_metacleaner as kmc

    def backbone():
        return kmc.models.get_backbone("small_cnn", tuple(image_shape))

    def metacleaner():
        # The project's default method ("metacleaner" preset), as tools/train.py builds it.
        return kmc.models.MetaCleanerModel.from_preset(
            "metacleaner", backbone(), num_classes=num_classes, subset_size=SUBSET_SIZE, seed=SEED
        )

    def compiled(model):
        model.compile(
            optimizer=keras.optimizers.SGD(0.02, momentum=0.9),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    return {
        "plain": lambda: compiled(kmc.models.plain_classifier(backbone(), num_classes)),
        "metacleaner": lambda: compiled(metacleaner()),
    }


def child(args) -> dict:
    """One measurement: load, build the pipeline and model, fit two epochs, time the second."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import tensorflow as tf

    import keras_metacleaner as kmc

    keras.utils.set_random_seed(SEED)
    spec = "fashion_mnist" if args.child_data == "fashion_mnist" else f"folder:{args.folder}"
    loaded = kmc.data.load(spec, seed=SEED)
    if args.train_examples and args.train_examples < loaded.labels.size:
        loaded = loaded.take(args.train_examples)  # keeps the random-access view
    train, info = loaded.train, loaded.info
    size = int(loaded.labels.size)  # a folder's dataset has no known cardinality
    images_per_step = args.groups * SUBSET_SIZE
    steps = size // images_per_step
    if steps < 1:
        raise ValueError(f"{spec}: {size} training examples are fewer than one step.")
    image_shape = tuple(train.element_spec[0].shape)

    if args.child_method == "plain":
        # The recipe's single-image pipeline: seeded reshuffling buffer (at most
        # ~256 MB of decoded images), K·N images per step.
        image_bytes = int(np.prod(image_shape)) * 4
        buffer = max(1, min(size, max(1024, 256 * 2**20 // image_bytes)))
        dataset = train.shuffle(buffer, seed=SEED, reshuffle_each_iteration=True)
        dataset = dataset.batch(images_per_step, drop_remainder=True)
    else:
        dataset = kmc.data.group_by_class(
            loaded, SUBSET_SIZE, args.groups, seed=SEED, num_classes=info.num_classes
        )
    dataset = dataset.repeat().prefetch(tf.data.AUTOTUNE)
    model = _models(info.num_classes, image_shape)[args.child_method]()

    class EpochClock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epochs = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = (time.perf_counter(), time.process_time())

        def on_epoch_end(self, epoch, logs=None):
            wall, cpu = self.start
            self.epochs.append((time.perf_counter() - wall, time.process_time() - cpu))

    clock = EpochClock()
    # Epoch 1 traces the step and warms the pipeline up; epoch 2 is timed.
    model.fit(dataset, epochs=2, steps_per_epoch=steps, callbacks=[clock], verbose=0)
    wall, cpu = clock.epochs[-1]
    images = steps * images_per_step
    return {
        "data": args.child_data,
        "method": args.child_method,
        "train_examples": size,
        "image_shape": list(image_shape),
        "images_per_step": images_per_step,
        "steps": steps,
        "images": images,
        "epoch_wall_s": wall,
        "epoch_cpu_s": cpu,
        "images_per_second": images / wall,
        "cpu_ms_per_image": 1e3 * cpu / images,
        # Peak RSS of this process (kB on Linux); the parent imports no TF, so
        # what exec carries over from it is small. VmHWM: this address space only.
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "vm_hwm_mb": _status_mb("VmHWM"),
        "final_loss": float(model.get_metrics_result()["loss"]),
    }


# ------------------------------------------------------------------- parent
def write_jpegs(root: str, train_count: int, test_count: int, classes: int = 10, size=64) -> None:
    """`root/{train,test}/class_<c>/<i>.jpg`: colour ramps with noise, one class per tint."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(SEED)
    ramp = np.linspace(0, 255, size)[None, :, None]
    tints = rng.uniform(0.3, 1.0, (classes, 3))
    for split, count in (("train", train_count), ("test", test_count)):
        for i in range(count):
            label = i % classes
            directory = os.path.join(root, split, f"class_{label}")
            os.makedirs(directory, exist_ok=True)
            noise = rng.normal(0, 25, (size, size, 3))
            pixels = np.clip(ramp * tints[label] + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(os.path.join(directory, f"{i}.jpg"), quality=90)


def _run_child(args, data: str, method: str, folder: str) -> dict:
    command = [
        sys.executable,
        os.path.abspath(__file__),
        f"--child_data={data}",
        f"--child_method={method}",
        f"--folder={folder}",
        f"--groups={args.groups}",
        f"--train_examples={args.train_examples if data == 'fashion_mnist' else 0}",
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"measurement {data}/{method} failed:\n{done.stderr[-3000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(lines[-1][len("RESULT ") :])


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip()


def _commit() -> dict:
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"sha": _git("rev-parse", "--short=12", "HEAD"), "dirty": bool(status)}


def summarize(samples: dict) -> dict:
    """Medians per (data, method) and MetaCleaner / plain ratios, paired by repeat."""
    summary = {}
    for data, by_method in samples.items():
        medians = {
            method: {
                key: statistics.median(run[key] for run in runs)
                for key in (
                    "images_per_second",
                    "cpu_ms_per_image",
                    "epoch_wall_s",
                    "peak_rss_mb",
                )
            }
            for method, runs in by_method.items()
        }
        plain, cleaner = by_method["plain"], by_method["metacleaner"]
        pairs = list(zip(cleaner, plain))
        # Throughput in CPU time: plain CPU per image over MetaCleaner's (> 1: faster).
        cpu_ratio = statistics.median(
            p["cpu_ms_per_image"] / c["cpu_ms_per_image"] for c, p in pairs
        )
        wall_ratio = statistics.median(
            c["images_per_second"] / p["images_per_second"] for c, p in pairs
        )
        memory_ratio = statistics.median(c["peak_rss_mb"] / p["peak_rss_mb"] for c, p in pairs)
        first = plain[0]
        summary[data] = {
            "train_examples": first["train_examples"],
            "image_shape": first["image_shape"],
            "images_per_step": first["images_per_step"],
            "steps_per_epoch": first["steps"],
            "repeats": len(pairs),
            "median": medians,
            "ratio_metacleaner_over_plain": {
                "throughput_cpu": cpu_ratio,
                "throughput_wall": wall_ratio,
                "peak_memory": memory_ratio,
            },
            "goals_met": {
                "throughput_cpu": cpu_ratio >= GOAL_CPU_THROUGHPUT,
                "peak_memory": memory_ratio <= GOAL_PEAK_MEMORY,
            },
        }
    return summary


DATA_TITLES = {
    "fashion_mnist": "Fashion-MNIST, in memory",
    "jpeg_folder": "JPEG folder (`folder:`)",
}


def markdown(report: dict) -> str:
    lines = [
        f"`{report['command']}` — commit `{report['commit']['sha']}`"
        + (" (uncommitted changes)" if report["commit"]["dirty"] else "")
        + f", {report['date_utc']}, {report['machine']}.",
        "",
        "| data | method | images | images / s (wall) | CPU ms / image | s / epoch | peak RSS MB |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for data, s in report["summary"].items():
        for method in METHODS:
            m = s["median"][method]
            lines.append(
                f"| {DATA_TITLES.get(data, data)} | {method} | {s['steps_per_epoch']} x "
                f"{s['images_per_step']} | {m['images_per_second']:,.0f} | "
                f"{m['cpu_ms_per_image']:.3f} | {m['epoch_wall_s']:.2f} | {m['peak_rss_mb']:,.0f} |"
            )
    lines += [
        "",
        "| data | MetaCleaner / plain: throughput (CPU time) | throughput (wall) | peak memory |",
        "|---|---:|---:|---:|",
    ]
    for data, s in report["summary"].items():
        r, ok = s["ratio_metacleaner_over_plain"], s["goals_met"]
        lines.append(
            f"| {DATA_TITLES.get(data, data)} | {r['throughput_cpu']:.3f}x "
            f"({'meets' if ok['throughput_cpu'] else 'misses'} >= {GOAL_CPU_THROUGHPUT}) | "
            f"{r['throughput_wall']:.3f}x | {r['peak_memory']:.3f}x "
            f"({'meets' if ok['peak_memory'] else 'misses'} <= {GOAL_PEAK_MEMORY}) |"
        )
    lines += [
        "",
        ("`--tiny`: a format check on tiny data, not a measurement. " if report["tiny"] else "")
        + f"Medians of {report['repeats']} repeat(s); ratios are medians of the per-repeat ratios "
        "(runs next to each other in time). Each cell is one subprocess that trains two epochs "
        "and times the second (pipeline + step as `fit` runs them); peak RSS is that "
        "process's `ru_maxrss`. " + report["note"],
    ]
    return "\n".join(lines) + "\n"


def update_results_md(
    path: str,
    table: str,
    name: str = "epoch_throughput",
    title: str = "Epoch throughput and memory (issue 15)",
) -> None:
    """Replaces the section `name` of `path` (appends it the first time); the rest is kept."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    section = f"{start}\n## {title}\n\n{table}{end}\n"
    text = open(path).read() if os.path.exists(path) else ""
    if start in text and end in text:
        head, rest = text.split(start, 1)
        tail = rest.split(end, 1)[1].lstrip("\n")
        text = head + section + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + section
    with open(path, "w") as handle:
        handle.write(text)


def write_json(path: str, payload: dict) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    temporary = f"{path}.tmp{os.getpid()}"
    with open(temporary, "w") as handle:
        json.dump(payload, handle, indent=2)
        handle.write("\n")
    os.replace(temporary, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--train_examples", type=int, default=20000, help="Fashion-MNIST examples (0: all 60k)"
    )
    parser.add_argument("--jpegs", type=int, default=3000, help="training JPEGs generated")
    parser.add_argument("--groups", type=int, default=32, help="K; images per step = K·N")
    parser.add_argument("--tiny", action="store_true", help="tiny data, one repeat: formats only")
    parser.add_argument(
        "--out", default=os.path.join(ROOT, "docs", "data", "epoch_throughput.json")
    )
    parser.add_argument("--markdown", help="also write the Markdown table to this file")
    parser.add_argument("--results_md", help="replace this benchmark's section in this file")
    parser.add_argument(
        "--note",
        default="The machine's 2 CPU cores were shared with other jobs while this ran: the "
        "wall-clock numbers are noisy, the CPU time per image less so.",
    )
    parser.add_argument("--child_data", choices=DATASETS, help=argparse.SUPPRESS)
    parser.add_argument("--child_method", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--folder", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_data:
        print("RESULT " + json.dumps(child(args)), flush=True)
        return 0
    for flag in ("repeats", "jpegs", "groups"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} must be >= 1, got {getattr(args, flag)}")
    if args.train_examples < 0:
        parser.error(f"--train_examples must be >= 0, got {args.train_examples}")
    if args.tiny:
        args.repeats, args.train_examples, args.jpegs, args.groups = 1, 256, 96, 8

    command = " ".join(["benchmarks/epoch_throughput.py", *sys.argv[1:]] if argv is None else argv)
    commit = _commit()  # of the code measured, before anything is written
    samples = {data: {method: [] for method in METHODS} for data in DATASETS}
    with tempfile.TemporaryDirectory(prefix="kmc-epoch-") as folder:
        write_jpegs(folder, args.jpegs, max(10, args.jpegs // 10))
        for repeat in range(args.repeats):
            order = METHODS if repeat % 2 == 0 else METHODS[::-1]
            for data in DATASETS:
                for method in order:
                    result = _run_child(args, data, method, folder)
                    samples[data][method].append(result)
                    print(
                        f"repeat {repeat + 1}/{args.repeats} {data:<13} {method:<11} "
                        f"{result['images_per_second']:9,.0f} images/s  "
                        f"{result['cpu_ms_per_image']:.3f} CPU ms/image  "
                        f"peak RSS {result['peak_rss_mb']:,.0f} MB",
                        file=sys.stderr,
                        flush=True,
                    )
    report = {
        "benchmark": "epoch_throughput",
        "command": command,
        "commit": commit,
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "note": args.note,
        "tiny": args.tiny,
        "repeats": args.repeats,
        "subset_size_N": SUBSET_SIZE,
        "groups_K": args.groups,
        "goals": {"throughput_cpu_min": GOAL_CPU_THROUGHPUT, "peak_memory_max": GOAL_PEAK_MEMORY},
        "summary": summarize(samples),
        "samples": samples,
    }
    table = markdown(report)
    print(table)
    write_json(args.out, report)
    print(f"wrote {args.out}")
    if args.markdown:
        with open(args.markdown, "w") as handle:
            handle.write(table)
    if args.results_md:
        update_results_md(args.results_md, table)
        print(f"updated {args.results_md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
