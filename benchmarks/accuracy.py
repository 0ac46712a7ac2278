"""Accuracy of every named method under label noise, through the library's own training path.

Each run is `kmc.training.run(TrainConfig(...))` on a named method (the code
`tools/train.py` runs): Fashion-MNIST, the first `--train_size` training
images (`--train_subset`, as the tool), label noise, then 10% of them held out
as a noisy validation split, `small_cnn`, SGD, `--select_on=noisy_val`.
Three accuracies per run: final (last epoch), picked (the epoch with the best
noisy-validation accuracy, what a user without clean labels can do) and the
oracle best epoch (shown beside, never a choice).

The grid is methods x noise x schedule x seed, in two phases: on seed 0 every
method runs every schedule of `--schedules`, and each (method, noise) keeps
the schedule with the best noisy-validation accuracy; seeds 1.. then run at
that schedule only. One JSONL record per finished run (`--out`), with the git
commit and dirty flag read from git; a rerun skips what is done, so an
interrupted grid resumes. `--report` prints one markdown table.

Run the long grid from a pinned checkout, so that editing the code while it
runs changes nothing (the record's commit is the checkout's):

    git worktree add ../bench-$(git rev-parse --short HEAD) HEAD
    cd ../bench-<sha> && python benchmarks/accuracy.py --out ../accuracy.jsonl
    python benchmarks/accuracy.py --report --out ../accuracy.jsonl

`--report --goals` also checks issue 14's goals against the records (the best peer per
setting and measure, each at its chosen schedule).

`--tiny` (what `make test` runs) checks formats and the selection logic on a
few one-epoch runs of a tiny dataset; it measures neither accuracy nor time.
Records of the earlier benchmark (docs/data/accuracy.jsonl, its own training
loop) stay readable: `--report` maps their method names where they match a
named method and marks every one of them `legacy`.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import multiprocessing as mp
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterable

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # this checkout's library, not the installed (editable) one
OUT = os.path.join(ROOT, "benchmarks", "out", "accuracy.jsonl")
RECORD_VERSION = 2
# The default by its frozen name: `metacleaner` moves to each new version, a record must not.
METHODS = (
    "metacleaner_v1",
    "metacleaner_v2",
    "metacleaner_v3",
    "paper",
    "loss_reweight",
    "baseline",
    "gce",
    "sce",
    "elr",
    "coteaching",
)
NOISES = (
    ("symmetric", 0.0),
    ("symmetric", 0.2),
    ("symmetric", 0.4),
    ("symmetric", 0.6),
    ("symmetric", 0.8),
    ("pairflip", 0.45),
    ("confusion", 0.4),
)
SCHEDULES = ("constant", "step", "cosine")
# What a user would use instead of MetaCleaner: the method to beat is the best of these.
PEERS = ("baseline", "gce", "sce", "elr", "coteaching")
# Issue 14's goals: ahead of the best peer by this much (points) on these settings ...
AHEAD_BY, AHEAD_SETTINGS = (
    1.0,
    (("symmetric", 0.4), ("symmetric", 0.6), ("pairflip", 0.45), ("confusion", 0.4)),
)
# ... no more than this below plain training without noise ...
CLEAN_SLACK = 0.3
# ... and under a constant rate, the final epoch within this of the run's own best epoch.
MEMORISATION_SLACK = 1.0
# Records made while a moving name meant a frozen version (every `metacleaner` record of this
# benchmark ran while it named metacleaner_v1: commits 4662aa5 and f71114e).
# metacleaner_v2 ran as the candidate `metacleaner_bootstrap` (commit 411057b), the same
# arguments under the name it had before it was frozen.
RENAMED = {"metacleaner": "metacleaner_v1", "metacleaner_bootstrap": "metacleaner_v2"}
# Old benchmark names (its own loop) that are a named method today.
LEGACY_NAMES = {
    "baseline": "baseline",
    "fc_fc_relu_sig": "paper",
    "loss_reweight:fc_fc_relu_sig": "loss_reweight",
    "label_posterior_rel_m1_p0.5+rawmember+subsetmax": "metacleaner_v1",
}


def run_key(spec: dict) -> str:
    """The identity of a run: what the grid varies plus the fixed settings."""
    fields = ("method", "noise_type", "noise_rate", "schedule", "seed", "epochs", "train_size")
    return json.dumps([spec.get(f) for f in fields] + [spec.get("dataset")])


def run_dir_name(spec: dict) -> str:
    """A stable directory name per grid point: an interrupted run resumes from its backup."""
    return "run-" + hashlib.sha1(run_key(spec).encode()).hexdigest()[:12]


def train_config(spec: dict, run_dir: str):
    """The `TrainConfig` of one grid point (the tool's settings, flag for flag)."""
    from keras_metacleaner.training import TrainConfig

    schedule = spec["schedule"]
    return TrainConfig(
        spec["dataset"],
        run_dir,
        method=spec["method"],
        noise_type=spec["noise_type"] if spec["noise_rate"] > 0 else "none",
        noise_rate=spec["noise_rate"],
        train_subset=spec["train_size"],
        validation_split=spec["validation_split"],
        select_on="noisy_val",
        schedule=schedule,
        lr_decay_epochs=max(1, spec["epochs"] // 3) if schedule == "step" else 0,
        epochs=spec["epochs"],
        learning_rate=spec["learning_rate"],
        batch_size=spec["batch_size"],
        seed=spec["seed"],
        verbose=0,
        overwrite=True,
        alpha_auroc_examples=spec.get("alpha_auroc_examples", 2000),
    )


def record_from_results(spec: dict, results: dict, commit: dict | None, command: str) -> dict:
    """One JSONL record: the grid point, the three accuracies and where they came from."""
    history = results["history"]
    return {
        **spec,
        "record_version": RECORD_VERSION,
        "final": results["final_test_accuracy"],
        "picked": results["picked_test_accuracy"],
        "oracle": results["oracle_best_test_accuracy"],
        "noisy_val_best": (results.get("selection") or {}).get("score"),
        "picked_epoch": (results.get("selection") or {}).get("epoch"),
        "test_curve": [e.get("val_accuracy") for e in history],
        "noisy_val_curve": [e.get("noisy_val_accuracy") for e in history],
        "realised_noise": results.get("realised_noise_rate"),
        "alpha_auroc": results.get("alpha_auroc"),
        "config": results.get("flags"),
        "commit": commit,
        "command": command,
        "date": time.strftime("%Y-%m-%d"),
        "seconds_per_epoch": results.get("seconds_per_epoch"),
    }


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def claim(run_dir: str) -> str | None:
    """Takes `<run_dir>.lock` for this process; returns its path, or None if a live one holds it.

    Two grid processes given the same point (two queues over one `--out`) would train in one
    run directory: the second resumes from the first's backups and restores the first's
    selected weights, and both records are then a mixture. A lock left by a dead process is
    taken over.
    """
    lock = run_dir.rstrip(os.sep) + ".lock"
    os.makedirs(os.path.dirname(os.path.abspath(lock)), exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                with open(lock) as f:
                    holder = int(f.read().strip() or 0)
            except (OSError, ValueError):
                holder = 0
            if holder and _pid_alive(holder):
                return None
            os.remove(lock)  # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return lock
    return None


def run_one(task: tuple[dict, str, dict | None, str]) -> dict | None:
    """Trains one grid point through `kmc.training.run` and returns its record.

    Returns None, without training, when another live process is training the same point.
    """
    spec, run_dir, commit, command = task
    lock = claim(run_dir)
    if lock is None:
        return None
    try:
        return _train_one(spec, run_dir, commit, command)
    finally:
        os.remove(lock)


def _train_one(spec: dict, run_dir: str, commit: dict | None, command: str) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    threads = spec.get("threads", 1)
    try:  # one thread per run in the grid's fresh worker processes
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already started in this process (in-process runs)
        pass
    from keras_metacleaner import training

    results = training.run(train_config(spec, run_dir))
    record = record_from_results(spec, results, commit, command)
    # Where the library came from, in the process that trained.
    record["library"] = os.path.dirname(os.path.abspath(training.__file__))
    return record


# -------------------------------------------------------------- the records
def read_records(path: str) -> list[dict]:
    """Every record of a JSONL file, old ones normalised (see `normalise`)."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [normalise(json.loads(line)) for line in f if line.strip()]


def normalise(record: dict) -> dict:
    """A record in today's format; records of the earlier benchmark are marked `legacy`.

    The earlier benchmark trained with its own loop on a seeded random draw of
    the training images, without a validation split: it has final and
    best-epoch (oracle) accuracies, no picked one. Its method names map to a
    named method where they are the same configuration. Records of this benchmark
    named by a moving name (`metacleaner`) get the frozen name they ran (`RENAMED`).
    """
    if record.get("record_version") == RECORD_VERSION:
        if record.get("method") in RENAMED:
            return {
                **record,
                "method": RENAMED[record["method"]],
                "method_as_run": record["method"],
            }
        return record
    name = record.get("method")
    return {
        "method": LEGACY_NAMES.get(name, name),
        "legacy_name": name,
        "legacy": True,
        "noise_type": record.get("noise_type"),
        "noise_rate": record.get("noise_rate"),
        "schedule": "step" if record.get("lr_decay_epochs") else "constant",
        "seed": record.get("seed"),
        "epochs": record.get("epochs"),
        "train_size": record.get("train_size"),
        "final": record.get("final_accuracy"),
        "picked": None,
        "oracle": record.get("best_accuracy"),
        "noisy_val_best": None,
        "commit": {"sha": record.get("commit"), "dirty": None},
        "date": record.get("date"),
    }


def append(path: str, record: dict) -> None:
    """Appends one line, flushed whole: an interrupted grid loses at most the run in flight."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


# ---------------------------------------------------------------- the grid
def base_spec(args) -> dict:
    return {
        "dataset": args.dataset,
        "epochs": args.epochs,
        "train_size": args.train_size,
        "validation_split": args.validation_split,
        "learning_rate": args.learning_rate,
        "batch_size": args.batch_size,
    }


def selection_specs(args) -> list[dict]:
    """Phase 1: seed 0, every method x noise x schedule."""
    return [
        {**base_spec(args), "method": m, "noise_type": k, "noise_rate": r, "schedule": s, "seed": 0}
        for (k, r), m, s in itertools.product(args.noises, args.methods, args.schedules)
    ]


def chosen_schedules(records: Iterable[dict]) -> dict[tuple, str]:
    """(method, noise_type, noise_rate) -> the schedule with the best seed-0 noisy-val accuracy.

    Ties go to the earlier schedule of `SCHEDULES` (constant, step, cosine).
    """
    best: dict[tuple, tuple] = {}
    for r in records:
        if r.get("legacy") or r.get("seed") != 0 or r.get("noisy_val_best") is None:
            continue
        key = (r["method"], r["noise_type"], r["noise_rate"])
        rank = (r["noisy_val_best"], -SCHEDULES.index(r["schedule"]))
        if key not in best or rank > best[key][0]:
            best[key] = (rank, r["schedule"])
    return {key: schedule for key, (_, schedule) in best.items()}


def runs_at(
    records: Iterable[dict],
    chosen: dict[tuple, str],
    method: str,
    kind: str,
    rate: float,
    schedule: str | None = None,
) -> list[dict]:
    """The records of `method` at one noise and `schedule` (default: its chosen one)."""
    schedule = schedule or chosen.get((method, kind, rate))
    return [
        r
        for r in records
        if (r["method"], r["noise_type"], r["noise_rate"], r["schedule"])
        == (method, kind, rate, schedule)
    ]


def seed_specs(args, chosen: dict[tuple, str]) -> list[dict]:
    """Phase 2: seeds 1.. at each (method, noise)'s chosen schedule."""
    specs = []
    for (k, r), m, seed in itertools.product(args.noises, args.methods, range(1, args.seeds)):
        schedule = chosen.get((m, k, r))
        if schedule is not None:
            specs.append(
                {
                    **base_spec(args),
                    "method": m,
                    "noise_type": k,
                    "noise_rate": r,
                    "schedule": schedule,
                    "seed": seed,
                }
            )
    return specs


def run_grid(args, runner: Callable[[tuple], dict] = run_one, commit=None) -> list[dict]:
    """Runs what is missing of both phases; returns the new records."""
    command = "python benchmarks/accuracy.py " + " ".join(shlex.quote(a) for a in args.argv)
    new = []
    for phase in ("selection", "seeds"):
        records = read_records(args.out)
        done = {run_key(r) for r in records if not r.get("legacy")}
        if phase == "selection":
            specs = selection_specs(args)
        else:
            specs = seed_specs(args, chosen_schedules(records))
        todo = [s for s in specs if run_key(s) not in done]
        print(f"{phase}: {len(specs)} runs, {len(specs) - len(todo)} already in {args.out}")
        tasks = [(s, os.path.join(args.run_root, run_dir_name(s)), commit, command) for s in todo]
        if args.jobs and runner is run_one and len(tasks) > 1:
            # Fresh processes: TF's thread settings only apply before it starts.
            pool = mp.get_context("spawn").Pool(args.jobs, maxtasksperchild=1)
            results = pool.imap_unordered(runner, tasks)
        else:
            results = map(runner, tasks)
        for record in results:
            if record is None:
                print("skipped: another live process is training this point", flush=True)
                continue
            append(args.out, record)
            new.append(record)
            print(
                f"{record['method']:>13} {record['noise_type']} {record['noise_rate']:.2f} "
                f"{record['schedule']:>8} seed={record['seed']}: final {record['final']:.4f} "
                f"picked {record['picked']:.4f} oracle {record['oracle']:.4f}",
                flush=True,
            )
    return new


# --------------------------------------------------------------- the report
def _stat(values) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    values = np.asarray(values, float) * 100
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{values.mean():.2f} ± {values.std():.2f}"


def report(path: str, legacy: bool = False, all_schedules: bool = False) -> str:
    """One markdown table: per noise and method, at its chosen schedule, final / picked / oracle.

    Args:
        path: the JSONL records.
        legacy: report the earlier benchmark's records instead (final and oracle only).
        all_schedules: every schedule that ran (seed 0 for the ones not chosen), the chosen
            one marked `*`: the final-epoch goal under a constant rate reads from it.

    Returns:
        Markdown: a header line (command, commits, dates), then the table.
    """
    records = [r for r in read_records(path) if bool(r.get("legacy")) == legacy]
    if legacy:
        chosen = None
    else:
        chosen = chosen_schedules(records)
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        if chosen is not None and not all_schedules:
            if chosen.get((r["method"], r["noise_type"], r["noise_rate"])) != r["schedule"]:
                continue  # seed 0 at a schedule that was not chosen
        name = r.get("legacy_name", r["method"]) if legacy else r["method"]
        groups.setdefault((r["noise_type"], r["noise_rate"], name, r["schedule"]), []).append(r)
    commits = sorted(
        {
            f"{(r.get('commit') or {}).get('sha') or 'unknown'}"
            f"{'-dirty' if (r.get('commit') or {}).get('dirty') else ''}"
            for r in records
        }
    )
    dates = sorted({r.get("date") or "?" for r in records})
    commands = sorted({r.get("command") for r in records if r.get("command")})
    lines = [
        f"Command(s): {'; '.join(f'`{c}`' for c in commands) or 'legacy benchmark'}; commit(s): "
        f"{', '.join(commits) or '–'}; date(s): {', '.join(dates) or '–'}"
        + ("; legacy records (the earlier benchmark's own loop)." if legacy else "."),
        "",
        "| noise | method | schedule | seeds | final | picked (noisy val) | oracle best |",
        "|---|---|---|---|---|---|---|",
    ]
    for key in sorted(groups, key=lambda g: (g[0], g[1], str(g[2]))):
        rs = groups[key]
        kind, rate, method, schedule = key
        mark = ""
        if all_schedules and chosen and chosen.get((method, kind, rate)) == schedule:
            mark = "*"
        lines.append(
            f"| {kind} {rate:.0%} | {method} | {schedule}{mark} | {len(rs)} "
            f"| {_stat(r['final'] for r in rs)} | {_stat(r['picked'] for r in rs)} "
            f"| {_stat(r['oracle'] for r in rs)} |"
        )
    return "\n".join(lines)


def _mean(records: list[dict], key: str) -> float:
    return float(np.mean([r[key] for r in records]) * 100)


def _described(records: list[dict], key: str) -> str:
    """`"84.94 ± 0.93 (n=3)"`: the mean, the spread over seeds and their count."""
    return f"{_stat(r[key] for r in records)} (n={len(records)})"


def default_version() -> str:
    """The frozen version `metacleaner` names today (imports the library)."""
    from keras_metacleaner.models import DEFAULT_VERSION

    return DEFAULT_VERSION


def goals(path: str, method: str | None = None) -> str:
    """Issue 14's goals checked against the records, each method at its chosen schedule.

    The best peer is chosen per setting and per measure (picked, final) from `PEERS`:
    the stricter reading, since a user could pick either. Means over the seeds that ran
    (their count is shown); a goal on a setting that has not run reads "not run".

    Args:
        path: the JSONL records.
        method: the method the goals are about; None: the default's newest frozen version.

    Returns:
        Markdown: a `| goal | measured | met? |` table.
    """
    method = default_version() if method in (None, "metacleaner") else method
    records = [r for r in read_records(path) if not r.get("legacy")]
    chosen = chosen_schedules(records)

    def runs(name, kind, rate, schedule=None):
        return runs_at(records, chosen, name, kind, rate, schedule)

    lines = ["| goal | measured | met? |", "|---|---|---|"]
    for kind, rate in AHEAD_SETTINGS:
        ours = runs(method, kind, rate)
        peers = {p: runs(p, kind, rate) for p in PEERS if p != method}
        peers = {p: rs for p, rs in peers.items() if rs}
        goal = f"ahead of the best peer by ≥ {AHEAD_BY:g} at {kind} {rate:.0%}"
        if not ours or not peers:
            lines.append(f"| {goal} | not run | – |")
            continue
        parts, met = [], True
        for key in ("picked", "final"):
            best = max(peers, key=lambda p: _mean(peers[p], key))
            margin = _mean(ours, key) - _mean(peers[best], key)
            met = met and margin >= AHEAD_BY
            parts.append(
                f"{key} {_described(ours, key)} against {best} "
                f"{_described(peers[best], key)}: {margin:+.2f}"
            )
        lines.append(f"| {goal} | {'; '.join(parts)} | {'yes' if met else 'no'} |")

    ours, plain = runs(method, "symmetric", 0.0), runs("baseline", "symmetric", 0.0)
    goal = f"at 0% noise no more than {CLEAN_SLACK:g} below plain training"
    if ours and plain:
        margins = {k: _mean(ours, k) - _mean(plain, k) for k in ("picked", "final")}
        met = all(m >= -CLEAN_SLACK for m in margins.values())
        measured = "; ".join(
            f"{k} {_described(ours, k)} against {_described(plain, k)}: {m:+.2f}"
            for k, m in margins.items()
        )
        lines.append(f"| {goal} | {measured} | {'yes' if met else 'no'} |")
    else:
        lines.append(f"| {goal} | not run | – |")

    settings = sorted(
        {(r["noise_type"], r["noise_rate"]) for r in records if r["method"] == method},
    )
    parts, met, seen = [], True, False
    for kind, rate in settings:
        if kind == "symmetric" and rate > 0.6:
            continue
        constant = runs(method, kind, rate, "constant")
        if not constant:
            continue
        seen = True
        gap = float(np.mean([r["final"] - r["oracle"] for r in constant]) * 100)
        met = met and gap >= -MEMORISATION_SLACK
        parts.append(f"{kind} {rate:.0%}: {gap:+.2f} (n={len(constant)})")
    goal = (
        f"constant rate: final within {MEMORISATION_SLACK:g} of its own best epoch, "
        "up to 60% symmetric and at every other noise"
    )
    lines.append(
        f"| {goal} | {'; '.join(parts) if seen else 'not run'} | "
        f"{('yes' if met else 'no') if seen else '–'} |"
    )
    return "\n".join(lines)


def plot(path: str, out: str) -> str:
    """Picked accuracy against the noise rate, one line per method, at its chosen schedule.

    Symmetric noise on the left (mean over seeds, the spread as error bars); pair flips and
    the confusion-derived noise on the right, methods side by side. Needs matplotlib.

    Args:
        path: the JSONL records.
        out: the PNG to write.

    Returns:
        `out`.
    """
    from keras_metacleaner.visualization._matplotlib import new_figure, save

    records = [r for r in read_records(path) if not r.get("legacy")]
    chosen = chosen_schedules(records)
    groups: dict[tuple, list[float]] = {}
    for r in records:
        if chosen.get((r["method"], r["noise_type"], r["noise_rate"])) != r["schedule"]:
            continue
        groups.setdefault((r["method"], r["noise_type"], r["noise_rate"]), []).append(r["picked"])
    figure = new_figure(10, 4.2)
    left, right = figure.subplots(1, 2, width_ratios=(3, 2))
    methods = sorted(
        {m for m, _, _ in groups},
        key=lambda m: (METHODS.index(m) if m in METHODS else len(METHODS), m),
    )
    others = sorted({(k, rate) for _, k, rate in groups if k != "symmetric"})
    for i, method in enumerate(methods):
        color = f"C{i}"
        points = sorted(
            (rate, np.mean(v) * 100, np.std(v) * 100)
            for (m, k, rate), v in groups.items()
            if m == method and k == "symmetric"
        )
        if points:
            rates, means, spreads = zip(*points)
            left.errorbar(
                rates, means, yerr=spreads, color=color, marker="o", capsize=3, label=method
            )
        for j, (kind, rate) in enumerate(others):
            values = groups.get((method, kind, rate))
            if values:
                x = j + (i - (len(methods) - 1) / 2) * 0.08
                right.errorbar(
                    [x],
                    [np.mean(values) * 100],
                    yerr=[np.std(values) * 100],
                    color=color,
                    marker="o",
                    capsize=3,
                )
    left.set_xlabel("symmetric noise rate")
    left.set_ylabel("test accuracy at the noisy-val pick (%)")
    left.legend(fontsize=8, ncol=2)
    right.set_xticks(range(len(others)), [f"{k} {r:.0%}" for k, r in others])
    right.set_xlim(-0.6, max(len(others), 1) - 0.4)
    for axes in (left, right):
        axes.grid(alpha=0.3)
    figure.suptitle(
        "Fashion-MNIST 10k, small_cnn, 30 epochs; each method at its chosen schedule "
        "(mean ± std over seeds)"
    )
    return save(figure, out)


def _noises(spec: str) -> list[tuple[str, float]]:
    """`"symmetric:0.4,pairflip:0.45"` -> `[("symmetric", 0.4), ("pairflip", 0.45)]`."""
    out = []
    for item in filter(None, spec.split(",")):
        kind, _, rate = item.rpartition(":")
        out.append((kind, float(rate)))
    return out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated names")
    parser.add_argument(
        "--noise",
        default=",".join(f"{k}:{r}" for k, r in NOISES),
        help="comma-separated KIND:RATE, e.g. symmetric:0.4,pairflip:0.45",
    )
    parser.add_argument("--schedules", default=",".join(SCHEDULES))
    parser.add_argument("--seeds", type=int, default=3, help="seed 0 selects, 1.. confirm")
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--train_size", type=int, default=10000, help="the first n (as the tool)")
    parser.add_argument("--validation_split", type=float, default=0.1)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--learning_rate", type=float, default=0.02)
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (0: in-process)")
    parser.add_argument("--out", default=OUT)
    parser.add_argument("--run_root", default="", help="run directories (default: beside --out)")
    parser.add_argument("--report", action="store_true", help="print the table of --out")
    parser.add_argument("--legacy", action="store_true", help="with --report: the old records")
    parser.add_argument("--plot", default="", help="with --report: also draw accuracy vs noise")
    parser.add_argument(
        "--all_schedules", action="store_true", help="with --report: every schedule, chosen *"
    )
    parser.add_argument(
        "--goals",
        nargs="?",
        const="metacleaner",
        default="",
        metavar="METHOD",
        help="with --report: also check issue 14's goals for METHOD (default: the default)",
    )
    parser.add_argument(
        "--tiny", action="store_true", help="make test: formats and selection logic, tiny data"
    )
    args = parser.parse_args(argv)
    args.argv = argv
    args.methods = [m for m in args.methods.split(",") if m]
    if "metacleaner" in args.methods:  # records carry the frozen name it means today
        args.methods = [default_version() if m == "metacleaner" else m for m in args.methods]
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        parser.error(f"--methods: unknown method {unknown[0]!r}; expected one of {METHODS}")
    args.schedules = [s for s in args.schedules.split(",") if s]
    if set(args.schedules) - set(SCHEDULES):
        parser.error(f"--schedules: expected some of {SCHEDULES}")
    try:
        args.noises = _noises(args.noise)
    except ValueError:
        parser.error(f"--noise={args.noise}: expected KIND:RATE[,KIND:RATE...]")
    if args.report:
        print(report(args.out, legacy=args.legacy, all_schedules=args.all_schedules))
        if args.goals:
            print("\n" + goals(args.out, args.goals))
        if args.plot:
            print(f"wrote {plot(args.out, args.plot)}")
        return 0
    if args.tiny:
        args.epochs, args.train_size, args.batch_size = 2, 160, 32
        args.validation_split, args.jobs = 0.2, 0
    args.run_root = args.run_root or os.path.join(
        os.path.dirname(os.path.abspath(args.out)), "runs"
    )
    from keras_metacleaner.training.results import git_commit

    # The commit of the library this process imported (this checkout's, see ROOT above).
    run_grid(args, commit=git_commit())
    print(report(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
