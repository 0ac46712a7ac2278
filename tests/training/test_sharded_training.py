"""`kmc.training.run` on two local workers: each decodes only its share of the grouped epochs.

Issue 15 item 1 on the training side. Two processes of a
`MultiWorkerMirroredStrategy` (TF_CONFIG on 127.0.0.1) run MetaCleaner on a
`folder:` of tiny PNG files. This file is also the worker program
(`python test_sharded_training.py FOLDER MODEL_DIR OUT.json`): it wraps the
folder source's per-file load function to count the training files each
process decodes, then calls `kmc.training.run`. The grouped input is built
with `strategy.distribute_datasets_from_function`, so each worker decodes
about half of the images the epochs use; with element-wise auto-sharding
(`AutoShardPolicy.DATA`) every worker would decode all of them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLASSES, PER_CLASS, TEST_PER_CLASS = 4, 64, 2
BATCH, N, EPOCHS = 16, 4, 2
# Images the epochs use between all workers: steps * K * N per epoch.
STEPS = CLASSES * PER_CLASS // BATCH
PLANNED = EPOCHS * STEPS * BATCH


def _write_folder(root) -> None:
    """`root/{train,test}/c<k>/<i>.png`: 8x8 RGB, class k a bright row at row 2k."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, per_class in (("train", PER_CLASS), ("test", TEST_PER_CLASS)):
        for label in range(CLASSES):
            directory = root / split / f"c{label}"
            directory.mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 60, size=(8, 8, 3), dtype=np.uint8)
                pixels[2 * label : 2 * label + 2] = 220
                Image.fromarray(pixels).save(directory / f"{i:03d}.png")


def _worker(folder: str, model_dir: str, out: str) -> None:
    """One worker: count the training files decoded, run MetaCleaner, write the count."""
    from keras_metacleaner.training import strategy as kmc_strategy

    # The strategy first: its collectives must precede other TensorFlow work.
    strategy = kmc_strategy.get_strategy("multi_worker")

    import keras_metacleaner as kmc
    from keras_metacleaner import data
    from tests.tools.tool_helpers import counting_file_reads

    reads = []
    original_load = data.load

    def counting_load(spec, **kwargs):
        return counting_file_reads(original_load(spec, **kwargs), reads)

    data.load = counting_load
    config = kmc.training.TrainConfig(
        f"folder:{folder}",
        model_dir,
        method="metacleaner",
        batch_size=BATCH,
        subset_size=N,
        epochs=EPOCHS,
        strategy="multi_worker",
        alpha_auroc_examples=0,
        verbose="0",
    )
    results = kmc.training.run(config, strategy)
    with open(out, "w") as f:
        json.dump(
            {"task": kmc_strategy.task_id(), "reads": reads, "steps": results["steps_per_epoch"]}, f
        )


def _env(tf_config: dict) -> dict:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2", KMC_OFFLINE="1")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["TF_CONFIG"] = json.dumps(tf_config)
    return env


def test_each_worker_decodes_about_half_of_the_grouped_epochs(tmp_path):
    folder, model_dir = tmp_path / "images", tmp_path / "run"
    _write_folder(folder)
    from tools.tool_helpers import free_ports, wait_all

    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(2)]}
    outs = [tmp_path / f"worker{i}.json" for i in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), str(folder), str(model_dir), str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env({"cluster": cluster, "task": {"type": "worker", "index": i}}),
        )
        for i, out in enumerate(outs)
    ]
    wait_all(procs, timeout=240)

    workers = [json.loads(out.read_text()) for out in outs]
    reads = [len(w["reads"]) for w in workers]
    print(f"training files decoded per worker: {reads}; planned for both: {PLANNED}")
    # Every planned subset is decoded by some worker, and each worker decodes
    # its half plus a few batches more: the probe batch, and what the parallel
    # map and the prefetch buffers read ahead (into the spare draw that replaces
    # unreadable files, and past the last step). Element-wise auto-sharding
    # would make each worker decode all PLANNED images and more.
    assert sum(reads) >= PLANNED, reads
    for count in reads:
        assert PLANNED * 0.45 <= count <= PLANNED * 0.85, (reads, PLANNED)

    results = json.loads((model_dir / "results.json").read_text())
    assert results["strategy"] == {"name": "multi_worker", "replicas": 2}
    assert results["steps_per_epoch"] == STEPS == workers[0]["steps"] == workers[1]["steps"]
    assert [e["epoch"] for e in results["history"]] == list(range(EPOCHS))
    assert all(np.isfinite(e["loss"]) for e in results["history"])
    assert 0.0 <= results["test_accuracy"] <= 1.0
    assert not (model_dir / "backup").exists()


if __name__ == "__main__":
    _worker(*sys.argv[1:4])
