#!/usr/bin/env python
"""The picked accuracy under a smoothed noisy-validation pick, from stored records (no training).

For each method at the schedule its noisy validation chose, over the settings where three
seeds ran: the test accuracy at the epoch with the best noisy-validation accuracy (what
`--select_on=noisy_val` does), at the best 3- and 5-epoch trailing average of it, and the
final epoch; every method under the same rule (docs/results.md, issue 14 research).

    python benchmarks/research/smoothed_pick.py docs/data/accuracy_grid.jsonl
"""

from __future__ import annotations

import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import accuracy  # noqa: E402

SETTINGS = (
    ("symmetric", 0.4),
    ("symmetric", 0.6),
    ("pairflip", 0.45),
    ("confusion", 0.4),
    ("symmetric", 0.0),
)
METHODS = ("metacleaner_v3", "metacleaner_v2", "sce", "elr", "baseline", "gce")


def picked(record: dict, window: int) -> float:
    """Test accuracy at the epoch whose trailing `window`-epoch mean noisy accuracy is best."""
    noisy = np.asarray(record["noisy_val_curve"], float)
    test = np.asarray(record["test_curve"], float)
    smoothed = np.array([noisy[max(0, i - window + 1) : i + 1].mean() for i in range(len(noisy))])
    return float(test[int(np.argmax(smoothed))])


def table(path: str) -> str:
    records = [r for r in accuracy.read_records(path) if not r.get("legacy")]
    chosen = accuracy.chosen_schedules(records)
    lines = [
        "| setting | method (schedule) | n | best epoch | 3-epoch mean | 5-epoch mean | final |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, rate in SETTINGS:
        for method in METHODS:
            schedule = chosen.get((method, kind, rate))
            runs = accuracy.runs_at(records, chosen, method, kind, rate)
            if len(runs) < 3:
                continue
            cells = [np.mean([picked(r, w) for r in runs]) * 100 for w in (1, 3, 5)]
            final = np.mean([r["final"] for r in runs]) * 100
            lines.append(
                f"| {kind} {rate:.0%} | {method} ({schedule}) | {len(runs)} | "
                + " | ".join(f"{c:.2f}" for c in cells)
                + f" | {final:.2f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(sys.argv[1] if len(sys.argv) > 1 else accuracy.OUT))
