"""Distributed training on this machine: the same weights, and what the distribution costs.

Four runs of the project's default MetaCleaner method on the same global batches
(Fashion-MNIST grouped by `group_by_class`, fixed seed, fixed number of steps),
each in its own process(es):

* `one_device`: no strategy, one device;
* `mirrored_2`: `MirroredStrategy` over the CPU split into 2 logical devices;
* `multi_worker_1`: `MultiWorkerMirroredStrategy`, a cluster of 1 worker;
* `multi_worker_2`: `MultiWorkerMirroredStrategy`, 2 local worker processes
  (TF_CONFIG on 127.0.0.1), each with half of every global batch.

Every run must end with the weights of `one_device` within a float32
all-reduce tolerance; the throughput of each is printed beside it. On CPU
cores that the replicas share, these numbers are a correctness and overhead
check, not a speed claim: two replicas on one CPU do the same work as one, plus
the all-reduce, so no speed-up is expected here. Speed-ups need GPUs or
machines (docs/gpu_and_cluster.md).

    .venv/bin/python benchmarks/scaling.py [--steps=40] [--results_md=docs/results.md]

Writes docs/data/scaling.json and prints a Markdown table. The parent process
imports no TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from epoch_throughput import _commit, update_results_md, write_json  # noqa: E402

SEED = 0
SUBSET_SIZE = 4
MODES = ("one_device", "mirrored_2", "multi_worker_1", "multi_worker_2")
# float32 all-reduce sums in another order than one device's batch sum: the
# weights drift apart by rounding only, far below what one step moves them.
RTOL, ATOL = 1e-3, 1e-5


# ------------------------------------------------------------ in-process API
def build_model(num_classes: int, image_shape, learning_rate: float = 0.02, feature_dim=128):
    """The default MetaCleaner method on a small CNN, compiled with SGD (no BatchNorm)."""
    import keras

    import keras_metacleaner as kmc

    backbone = kmc.models.small_cnn(tuple(image_shape), feature_dim=feature_dim)
    model = kmc.models.MetaCleanerModel.from_preset(
        "metacleaner", backbone, num_classes=num_classes, subset_size=SUBSET_SIZE, seed=SEED
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate, momentum=0.9),
        loss="sparse_categorical_crossentropy",
    )
    return model


def grouped_batches(steps: int, groups: int, examples: int = 4096):
    """`steps` global batches `x [S, K, N, 28, 28, 1]`, `y [S, K]` of Fashion-MNIST, fixed seed."""
    import numpy as np

    import keras_metacleaner as kmc

    loaded = kmc.data.load("fashion_mnist", seed=SEED).take(examples)
    ds = kmc.data.group_by_class(
        loaded, SUBSET_SIZE, groups, seed=SEED, num_classes=loaded.info.num_classes, num_replicas=1
    )
    xs, ys = [], []
    while len(xs) < steps:  # as many epochs as needed
        for x, y in ds.as_numpy_iterator():
            xs.append(x)
            ys.append(y)
            if len(xs) == steps:
                break
    return np.stack(xs), np.stack(ys), loaded.info.num_classes


def train(strategy, x, y, num_classes: int, multi_worker: bool = False, learning_rate=0.02):
    """Trains on the global batches `x [S, K, ...]`, `y [S, K]` under `strategy`.

    Two epochs of S/2 steps; the second is timed (the first traces).

    Returns:
        `(weights, timing)`: the trainable weights (NumPy) after S steps and
        `{"images", "wall_s", "cpu_s"}` of the timed epoch in this process.
    """
    import keras
    import tensorflow as tf

    from keras_metacleaner.training import strategy as kmc_strategy

    steps, groups = int(x.shape[0]), int(x.shape[1])
    if steps < 2 or steps % 2:
        raise ValueError(f"need an even number of steps >= 2, got {steps}.")
    keras.utils.set_random_seed(SEED)
    with strategy.scope():
        model = build_model(num_classes, x.shape[3:], learning_rate)
    initial = [keras.ops.convert_to_numpy(v) for v in model.trainable_weights]
    # Global batches of K subsets; the strategy splits each on K between replicas.
    dataset = tf.data.Dataset.from_tensor_slices(
        (x.reshape(steps * groups, *x.shape[2:]), y.reshape(steps * groups))
    ).batch(groups, drop_remainder=True)
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = dataset.with_options(options)

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = (time.perf_counter(), time.process_time())

        def on_epoch_end(self, epoch, logs=None):
            self.elapsed = (
                time.perf_counter() - self.start[0],
                time.process_time() - self.start[1],
            )

    clock = Clock()
    if multi_worker:
        # As training.recipe does: build state from a local batch, since Keras 3's
        # symbolic build of a distributed batch fails (keras-team/keras#20585).
        for batch in dataset.take(1):
            with strategy.scope():
                model._symbolic_build(data_batch=batch)
                model.optimizer.build(model.trainable_variables)
        model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
        reduction = kmc_strategy.keras_multi_worker_reduction()
    else:
        import contextlib

        reduction = contextlib.nullcontext()
    with reduction:
        model.fit(
            dataset,
            epochs=2,
            steps_per_epoch=steps // 2,
            callbacks=[clock],
            verbose=0,
            shuffle=False,
        )
    weights = [keras.ops.convert_to_numpy(v) for v in model.trainable_weights]
    images = steps // 2 * groups * int(x.shape[2])
    # How far training moved the weights: the scale the differences are judged against.
    moved = max(float(abs(a - b).max()) for a, b in zip(weights, initial))
    timing = {"images": images, "wall_s": clock.elapsed[0], "cpu_s": clock.elapsed[1]}
    return weights, {**timing, "max_abs_update": moved}


def compare(weights, reference) -> dict:
    """Largest absolute and relative differences, and whether they are within tolerance."""
    import numpy as np

    diff = max(float(np.abs(a - b).max()) for a, b in zip(weights, reference))
    scale = max(float(np.abs(b).max()) for b in reference)
    close = len(weights) == len(reference) and all(
        np.allclose(a, b, rtol=RTOL, atol=ATOL) for a, b in zip(weights, reference)
    )
    return {"max_abs_diff": diff, "max_abs_weight": scale, "agree": bool(close)}


# -------------------------------------------------------------------- child
def child(args) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    from keras_metacleaner.training import strategy as kmc_strategy

    # Strategies first: the CPU split and the multi-worker collectives must
    # precede every other TensorFlow operation.
    if args.child == "mirrored_2":
        kmc_strategy.split_cpu(2)
        strategy = kmc_strategy.get_strategy("mirrored")
    elif args.child.startswith("multi_worker"):
        strategy = kmc_strategy.get_strategy("multi_worker")
    else:
        strategy = kmc_strategy.get_strategy("default")
    x, y, num_classes = grouped_batches(args.steps, args.groups)
    weights, timing = train(
        strategy, x, y, num_classes, multi_worker=args.child.startswith("multi_worker")
    )
    task = kmc_strategy.task_id()
    np.savez(os.path.join(args.workdir, f"{args.child}.{task}.npz"), *weights)
    print(
        "RESULT "
        + json.dumps(
            {
                "mode": args.child,
                "task": task,
                "replicas": strategy.num_replicas_in_sync,
                **timing,
            }
        ),
        flush=True,
    )


# ------------------------------------------------------------------- parent
def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _run_mode(mode: str, args, workdir: str) -> list[dict]:
    processes = 2 if mode == "multi_worker_2" else 1
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("TF_CONFIG", None)
    ports = _free_ports(processes)
    command = [
        sys.executable,
        os.path.abspath(__file__),
        f"--child={mode}",
        f"--steps={args.steps}",
        f"--groups={args.groups}",
        f"--workdir={workdir}",
    ]
    procs = []
    for index in range(processes):
        task_env = dict(env)
        if mode.startswith("multi_worker"):
            cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
            task_env["TF_CONFIG"] = json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": index}}
            )
        procs.append(
            subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=task_env,
                cwd=ROOT,
            )
        )
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=args.timeout)
            if proc.returncode != 0:
                raise RuntimeError(f"{mode} failed:\n{err[-3000:]}")
            line = [x for x in out.splitlines() if x.startswith("RESULT ")][-1]
            results.append(json.loads(line[len("RESULT ") :]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    return results


def _load_weights(path: str) -> list:
    import numpy as np

    with np.load(path) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]


def markdown(report: dict) -> str:
    lines = [
        f"`{report['command']}` — commit `{report['commit']['sha']}`"
        + (" (uncommitted changes)" if report["commit"]["dirty"] else "")
        + f", {report['date_utc']}, {report['machine']}.",
        "",
        "| run | processes | replicas | images / s (wall) | CPU ms / image (all processes) "
        "| max abs weight difference vs one device | same weights |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for mode, r in report["runs"].items():
        lines.append(
            f"| `{mode}` | {r['processes']} | {r['replicas']} | {r['images_per_second']:,.0f} | "
            f"{r['cpu_ms_per_image']:.3f} | "
            + ("-" if mode == "one_device" else f"{r['max_abs_diff']:.2e}")
            + f" | {'-' if mode == 'one_device' else ('yes' if r['agree'] else 'NO')} |"
        )
    lines += [
        "",
        f"Training moved the weights by up to {report['runs']['one_device']['max_abs_update']:.2e}"
        " (largest absolute change of one weight on one device). "
        f"{report['steps']} steps of {report['images_per_step']} images (K = {report['groups']} "
        f"subsets of N = {SUBSET_SIZE}, one global batch split on K), seed {SEED}, the "
        f"project's default MetaCleaner method on a small CNN; the second half of the steps is "
        f"timed. Same weights: `numpy.allclose(rtol={RTOL}, atol={ATOL})` on every trainable "
        "weight. **These CPU numbers are a correctness and overhead check, not a speed claim**: "
        "the replicas and workers share the same 2 CPU cores (which other jobs also used while "
        "this ran), so distributing can only add the all-reduce and coordination cost here. "
        "Speed-ups need GPUs or machines: see docs/gpu_and_cluster.md.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="training steps (even)")
    parser.add_argument("--groups", type=int, default=32, help="K, subsets per global batch")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--timeout", type=float, default=1200)
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "data", "scaling.json"))
    parser.add_argument("--results_md", help="replace this benchmark's section in this file")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return 0
    modes = [m for m in args.modes.split(",") if m]
    if not modes or any(m not in MODES for m in modes) or modes[0] != "one_device":
        parser.error(f"--modes: a list of {MODES} starting with one_device, got {args.modes!r}")
    if args.steps < 2 or args.steps % 2:
        parser.error(f"--steps must be even and >= 2, got {args.steps}")
    if args.groups < 2 or args.groups % 2:
        parser.error(f"--groups must be even (2 replicas split it), got {args.groups}")

    runs = {}
    with tempfile.TemporaryDirectory(prefix="kmc-scaling-") as workdir:
        for mode in modes:
            results = _run_mode(mode, args, workdir)
            images = results[0]["images"]
            wall = max(r["wall_s"] for r in results)
            cpu = sum(r["cpu_s"] for r in results)
            runs[mode] = {
                "processes": len(results),
                "replicas": results[0]["replicas"],
                "images_per_second": images / wall,
                "cpu_ms_per_image": 1e3 * cpu / images,
                "max_abs_update": results[0]["max_abs_update"],
                "per_process": results,
            }
            reference = _load_weights(os.path.join(workdir, "one_device.chief.npz"))
            for r in results:
                weights = _load_weights(os.path.join(workdir, f"{mode}.{r['task']}.npz"))
                r.update(compare(weights, reference))
            runs[mode]["max_abs_diff"] = max(r["max_abs_diff"] for r in results)
            runs[mode]["agree"] = all(r["agree"] for r in results)
            print(
                f"{mode:<15} {runs[mode]['images_per_second']:8,.0f} images/s  "
                f"max |w - w_one_device| {runs[mode]['max_abs_diff']:.2e}  "
                f"{'same weights' if runs[mode]['agree'] else 'WEIGHTS DIFFER'}",
                file=sys.stderr,
                flush=True,
            )
    report = {
        "benchmark": "scaling",
        "command": " ".join(["benchmarks/scaling.py", *(sys.argv[1:] if argv is None else argv)]),
        "commit": _commit(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "steps": args.steps,
        "groups": args.groups,
        "images_per_step": args.groups * SUBSET_SIZE,
        "tolerance": {"rtol": RTOL, "atol": ATOL},
        "runs": runs,
    }
    table = markdown(report)
    print(table)
    write_json(args.out, report)
    print(f"wrote {args.out}")
    if args.results_md:
        update_results_md(
            args.results_md, table, "scaling", "Distributed training on CPU (issue 15)"
        )
        print(f"updated {args.results_md}")
    return 0 if all(r["agree"] for r in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
