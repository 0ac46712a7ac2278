"""One process of tests/distribution/test_sharded_input.py: one epoch of grouped subsets.

    python shard_worker.py FOLDER OUT.json SUBSET_SIZE GROUPS SEED

With TF_CONFIG set, the process is a worker of a MultiWorkerMirroredStrategy
and reads its share through `strategy.distribute_datasets_from_function` and
`group_by_class(..., input_context=...)`; without it, the single-process plan.
The `folder:` source's PNGs hold their own index in their pixels (R * 256 + G),
so the subsets can be read back from the images; every file the process reads
is counted by wrapping the source's per-file load function.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(folder: str, out: str, subset_size: int, groups: int, seed: int) -> None:
    from keras_metacleaner.training import strategy as kmc_strategy

    multi_worker = bool(kmc_strategy.tf_config())
    # The strategy first: its collectives must precede other TensorFlow work.
    strategy = kmc_strategy.get_strategy("multi_worker") if multi_worker else None

    import numpy as np

    import keras_metacleaner as kmc
    from tests.tools.tool_helpers import counting_file_reads

    loaded = kmc.data.load(f"folder:{folder}", seed=seed)
    reads = []
    loaded = counting_file_reads(loaded, reads)

    contexts, datasets = [], []
    if multi_worker:

        def dataset_fn(input_context):
            contexts.append(input_context)
            ds = kmc.data.group_by_class(
                loaded, subset_size, groups, seed=seed, input_context=input_context
            )
            datasets.append(ds)
            return ds

        strategy.distribute_datasets_from_function(dataset_fn)
        assert len(datasets) == 1, "one input pipeline per worker (one CPU replica each)"
        dataset = datasets[0]
    else:
        dataset = kmc.data.group_by_class(loaded, subset_size, groups, seed=seed)

    steps, labels = [], []
    for x, y in dataset:  # one epoch
        pixels = x.numpy()[..., 0, 0, :].astype(np.int64)  # [k, N, 3]
        steps.append((pixels[..., 0] * 256 + pixels[..., 1]).tolist())
        labels.append(y.numpy().tolist())
    context = contexts[0] if contexts else None
    result = {
        "task": kmc_strategy.task_id(),
        "steps": steps,
        "labels": labels,
        "cardinality": int(dataset.cardinality()),
        "reads": reads,
        "context": None
        if context is None
        else {
            "num_input_pipelines": context.num_input_pipelines,
            "input_pipeline_id": context.input_pipeline_id,
            "num_replicas_in_sync": context.num_replicas_in_sync,
        },
    }
    with open(out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    folder, out, subset_size, groups, seed = sys.argv[1:6]
    main(folder, out, int(subset_size), int(groups), int(seed))
