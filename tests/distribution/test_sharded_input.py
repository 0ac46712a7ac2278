"""Two local worker processes each plan and decode only their share of an epoch's subsets.

Issue 15 item 1, checked end to end: two processes of a
`MultiWorkerMirroredStrategy` (TF_CONFIG on 127.0.0.1) build their input with
`strategy.distribute_datasets_from_function` and `group_by_class(...,
input_context=...)` on a `folder:` of PNG files; a third process builds the
single-process plan. Step by step, worker 0's subsets followed by worker 1's
are the single-process global batch (so their union is the plan and no subset
is used twice), and each process reads about half of the files the single
process reads (counted around the source's per-file load function).
"""

from __future__ import annotations

import collections
import inspect
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from tools.tool_helpers import free_ports, wait_all

import keras_metacleaner as kmc

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        "input_context" not in inspect.signature(kmc.data.group_by_class).parameters,
        reason="waits for helper data's group_by_class(input_context=...) (issue 15 item 1)",
    ),
]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shard_worker.py")
CLASSES, PER_CLASS, N, K, SEED = 6, 21, 4, 6, 3


def _write_folder(root) -> int:
    """`root/{train,test}/c<k>/<i>.png`, 4x4, pixel (R, G) = divmod(file index, 256)."""
    index = 0
    for split, per_class in (("train", PER_CLASS), ("test", 2)):
        for label in range(CLASSES):
            directory = root / split / f"c{label}"
            directory.mkdir(parents=True)
            for _ in range(per_class - label % 2):  # classes of 21 and 20: padded subsets
                pixels = np.zeros((4, 4, 3), np.uint8)
                pixels[..., 0], pixels[..., 1] = divmod(index, 256)
                Image.fromarray(pixels).save(directory / f"{index:04d}.png")
                index += 1
    return index


def _env(tf_config=None):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


def _start(folder, out, tf_config=None):
    return subprocess.Popen(
        [sys.executable, WORKER, str(folder), str(out), str(N), str(K), str(SEED)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(tf_config),
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def epochs(tmp_path_factory):
    """(single-process result, [worker 0 result, worker 1 result])."""
    tmp = tmp_path_factory.mktemp("sharded")
    _write_folder(tmp / "images")
    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(2)]}
    procs = [
        _start(
            tmp / "images",
            tmp / f"worker{i}.json",
            {"cluster": cluster, "task": {"type": "worker", "index": i}},
        )
        for i in range(2)
    ]
    procs.append(_start(tmp / "images", tmp / "single.json"))
    wait_all(procs, timeout=600)
    load = lambda name: json.loads((tmp / name).read_text())  # noqa: E731
    return load("single.json"), [load("worker0.json"), load("worker1.json")]


def test_the_workers_got_their_input_contexts(epochs):
    _, workers = epochs
    for index, worker in enumerate(workers):
        assert worker["task"] == f"worker_{index}"
        assert worker["context"] == {
            "num_input_pipelines": 2,
            "input_pipeline_id": index,
            "num_replicas_in_sync": 2,
        }


def test_union_of_the_shares_is_the_single_process_plan_step_by_step(epochs):
    single, workers = epochs
    steps = len(single["steps"])
    assert steps == single["cardinality"] >= 3
    for worker in workers:
        # One per-replica batch of K / 2 subsets per global step.
        assert len(worker["steps"]) == worker["cardinality"] == steps
        assert all(len(batch) == K // 2 for batch in worker["steps"])
    for step in range(steps):
        joined = workers[0]["steps"][step] + workers[1]["steps"][step]
        assert joined == single["steps"][step], f"step {step}"
        assert workers[0]["labels"][step] + workers[1]["labels"][step] == single["labels"][step]
    # No subset twice: as many distinct (step, position) subsets as the plan has.
    shares = [collections.Counter(tuple(s) for batch in w["steps"] for s in batch) for w in workers]
    plan = collections.Counter(tuple(s) for batch in single["steps"] for s in batch)
    assert shares[0] + shares[1] == plan
    assert not set(shares[0]) & set(shares[1])


def test_each_worker_decodes_about_half_of_the_images(epochs):
    single, workers = epochs
    total = len(single["reads"])
    used = sum(len(s) for batch in single["steps"] for s in batch)
    # Read-ahead of the spare draw may add a few subsets beyond the epoch's own.
    assert used <= total <= used + 4 * K * N
    counts = [len(w["reads"]) for w in workers]
    for worker, count in zip(workers, counts):
        mine = sum(len(s) for batch in worker["steps"] for s in batch)
        assert mine == used // 2
        assert mine <= count <= mine + 4 * K * N // 2, (count, mine)
        assert 0.35 * total <= count <= 0.65 * total, (counts, total)
    # Together they read about what one process reads, not twice as much.
    assert sum(counts) <= 1.3 * total
