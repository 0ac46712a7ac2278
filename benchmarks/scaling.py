"""Distributed training on this machine: the same weights, and what the distribution costs.

Four runs of the project's default MetaCleaner method on the same global batches
(Fashion-MNIST grouped by `group_by_class`, fixed seed, fixed number of steps),
each in its own process(es):

* `one_device`: no strategy, one device;
* `mirrored_2`: `MirroredStrategy` over the CPU split into 2 logical devices;
* `multi_worker_1`: `MultiWorkerMirroredStrategy`, a cluster of 1 worker;
* `multi_worker_2`: `MultiWorkerMirroredStrategy`, 2 local worker processes
  (TF_CONFIG on 127.0.0.1), each with half of every global batch.

After the first `--check_steps` steps every run must hold the weights of
`one_device` within a float32 all-reduce tolerance; the remaining steps are
timed, and the difference after them is printed too: float32 rounding (the
all-reduce sums in another order) grows as training goes on, so runs of many
steps are the same computation but not the same numbers. On CPU
cores that the replicas share, these numbers are a correctness and overhead
check, not a speed claim: two replicas on one CPU do the same work as one, plus
the all-reduce, so no speed-up is expected here. Speed-ups need GPUs or
machines (docs/gpu_and_cluster.md).

    .venv/bin/python benchmarks/scaling.py [--steps=40 --check_steps=4] \\
        [--results_md=docs/results.md]

Writes docs/data/scaling.json and prints a Markdown table. The parent process
imports no TensorFlow.
"""

from __future__ import annotations

import argparse
import contextlib
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
sys.path.insert(0, ROOT)  # this checkout's library, not the installed (editable) one
sys.path.insert(0, HERE)

from epoch_throughput import _commit, update_results_md, write_json  # noqa: E402

SEED = 0
SUBSET_SIZE = 4
MODES = ("one_device", "mirrored_2", "multi_worker_1", "multi_worker_2")
# float32 all-reduce sums in another order than one device's batch sum: the
# weights drift apart by rounding only, far below what one step moves them.
RTOL, ATOL = 1e-3, 1e-5


# ------------------------------------------------------------ in-process API
def build_model(
    num_classes: int, image_shape, learning_rate: float = 0.02, feature_dim=128, **overrides
):
    """The default MetaCleaner method on a small CNN, compiled with SGD (no BatchNorm).

    `overrides` go to `MetaCleanerModel.from_preset` (e.g. `shuffle_subsets=False`).
    """
    import keras

    import keras_metacleaner as kmc

    backbone = kmc.models.small_cnn(tuple(image_shape), feature_dim=feature_dim)
    model = kmc.models.MetaCleanerModel.from_preset(
        "metacleaner",
        backbone,
        num_classes=num_classes,
        subset_size=SUBSET_SIZE,
        **{"seed": SEED, **overrides},
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


def train(
    strategy,
    x,
    y,
    num_classes: int,
    check_steps: int,
    multi_worker: bool = False,
    learning_rate=0.02,
    **overrides,
):
    """Trains on the global batches `x [S, K, ...]`, `y [S, K]` under `strategy`.

    First `check_steps` steps (which also trace the step), a snapshot of the
    weights, then the remaining S - check_steps steps, timed.

    Returns:
        dict: `checked` and `final` (the trainable weights as NumPy arrays
        after `check_steps` and after S steps), `max_abs_update` (largest
        change of one weight over the first `check_steps` steps), and
        `images`, `wall_s`, `cpu_s` of the timed steps in this process.
    """
    import keras
    import tensorflow as tf

    from keras_metacleaner.training import keras_workarounds

    steps, groups = int(x.shape[0]), int(x.shape[1])
    if not 1 <= check_steps < steps:
        raise ValueError(f"need 1 <= check_steps={check_steps} < steps={steps}.")
    keras.utils.set_random_seed(SEED)
    with strategy.scope():
        model = build_model(num_classes, x.shape[3:], learning_rate, **overrides)
    initial = [keras.ops.convert_to_numpy(v) for v in model.trainable_weights]
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA

    def global_batches(first, last):
        # Global batches of K subsets; the strategy splits each on K between replicas.
        part_x, part_y = x[first:last], y[first:last]
        count = (last - first) * groups
        dataset = tf.data.Dataset.from_tensor_slices(
            (part_x.reshape(count, *x.shape[2:]), part_y.reshape(count))
        ).batch(groups, drop_remainder=True)
        return dataset.with_options(options)

    first_part = global_batches(0, check_steps)
    if multi_worker:
        # Training's work-arounds for Keras 3 under MultiWorkerMirroredStrategy.
        keras_workarounds.build_before_multi_worker_fit(model, first_part, strategy)
        reduction = keras_workarounds.multi_worker_reduction()
    else:
        reduction = contextlib.nullcontext()
    with reduction:
        model.fit(first_part, epochs=1, steps_per_epoch=check_steps, verbose=0, shuffle=False)
        checked = [keras.ops.convert_to_numpy(v) for v in model.trainable_weights]
        wall, cpu = time.perf_counter(), time.process_time()
        model.fit(
            global_batches(check_steps, steps),
            epochs=1,
            steps_per_epoch=steps - check_steps,
            verbose=0,
            shuffle=False,
        )
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    final = [keras.ops.convert_to_numpy(v) for v in model.trainable_weights]
    return {
        "checked": checked,
        "final": final,
        # How far training moved the weights: the scale the differences are judged against.
        "max_abs_update": max(float(abs(a - b).max()) for a, b in zip(checked, initial)),
        "images": (steps - check_steps) * groups * int(x.shape[2]),
        "wall_s": wall,
        "cpu_s": cpu,
    }


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
    result = train(
        strategy,
        x,
        y,
        num_classes,
        args.check_steps,
        multi_worker=args.child.startswith("multi_worker"),
    )
    task = kmc_strategy.task_id()
    for point in ("checked", "final"):
        path = os.path.join(args.workdir, f"{args.child}.{task}.{point}.npz")
        np.savez(path, *result.pop(point))
    print(
        "RESULT "
        + json.dumps(
            {
                "mode": args.child,
                "task": task,
                "replicas": strategy.num_replicas_in_sync,
                **result,
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
        f"--check_steps={args.check_steps}",
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
        f"| max abs weight difference vs one device after {report['check_steps']} steps "
        f"| same weights | ... after {report['steps']} steps |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for mode, r in report["runs"].items():
        one = mode == "one_device"
        lines.append(
            f"| `{mode}` | {r['processes']} | {r['replicas']} | {r['images_per_second']:,.0f} | "
            f"{r['cpu_ms_per_image']:.3f} | "
            + ("-" if one else f"{r['max_abs_diff_checked']:.2e}")
            + f" | {'-' if one else ('yes' if r['agree'] else 'NO')} | "
            + ("-" if one else f"{r['max_abs_diff_final']:.2e}")
            + " |"
        )
    lines += [
        "",
        f"{report['steps']} steps of {report['images_per_step']} images (K = {report['groups']} "
        f"subsets of N = {SUBSET_SIZE}, one global batch split on K between the replicas), seed "
        f"{SEED}, the project's default MetaCleaner method on a small CNN, SGD 0.02 with "
        f"momentum 0.9. The first {report['check_steps']} steps moved the weights by up to "
        f"{report['runs']['one_device']['max_abs_update']:.2e} (largest change of one weight on "
        "one device); after them every run must hold one device's weights: "
        f"`numpy.allclose(rtol={RTOL}, atol={ATOL})` on every trainable weight. The remaining "
        "steps are timed. Their last column shows how the float32 rounding differences (the "
        "all-reduce sums in another order) grow as training goes on: the runs are the same "
        "computation, not bit-identical, and a non-smooth loss term (the `max_alpha` subset "
        "weights pick a maximum) amplifies them. "
        "**These CPU numbers are a correctness and overhead check, not a speed claim**: "
        "the replicas and workers share the same 2 CPU cores (which other jobs also used while "
        "this ran), so distributing can only add the all-reduce and coordination cost here. "
        "Speed-ups need GPUs or machines: see docs/gpu_and_cluster.md.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="training steps in all")
    parser.add_argument(
        "--check_steps", type=int, default=4, help="steps after which the weights must agree"
    )
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
    if not 1 <= args.check_steps < args.steps:
        parser.error(f"need 1 <= --check_steps < --steps, got {args.check_steps}, {args.steps}")
    if args.groups < 2 or args.groups % 2:
        parser.error(f"--groups must be even (2 replicas split it), got {args.groups}")

    commit = _commit()  # of the code measured, before anything is written
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
            for point in ("checked", "final"):
                reference = _load_weights(os.path.join(workdir, f"one_device.chief.{point}.npz"))
                for r in results:
                    path = os.path.join(workdir, f"{mode}.{r['task']}.{point}.npz")
                    r[point] = compare(_load_weights(path), reference)
                runs[mode][f"max_abs_diff_{point}"] = max(r[point]["max_abs_diff"] for r in results)
            runs[mode]["agree"] = all(r["checked"]["agree"] for r in results)
            print(
                f"{mode:<15} {runs[mode]['images_per_second']:8,.0f} images/s  "
                f"max |w - w_one_device| {runs[mode]['max_abs_diff_checked']:.2e} after "
                f"{args.check_steps} steps, {runs[mode]['max_abs_diff_final']:.2e} after "
                f"{args.steps}  "
                f"{'same weights' if runs[mode]['agree'] else 'WEIGHTS DIFFER'}",
                file=sys.stderr,
                flush=True,
            )
    report = {
        "benchmark": "scaling",
        "command": " ".join(["benchmarks/scaling.py", *(sys.argv[1:] if argv is None else argv)]),
        "commit": commit,
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "steps": args.steps,
        "check_steps": args.check_steps,
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
