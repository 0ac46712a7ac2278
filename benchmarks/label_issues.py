#!/usr/bin/env python
"""Which ranking of the training labels finds the wrong ones best, and at what compute.

On Fashion-MNIST (the first `--train_size` training images) with injected noise, per seed:

  (a) `metacleaner`: `kmc.analysis.score_labels` suspicion after MetaCleaner training
      (the library's default method, trained to its last epoch);
  (b) `metacleaner_alpha`: the cleaner's α alone (suspicion 1 - α);
  (c) `baseline_picked` / `baseline_last`: a plainly trained classifier's confidence in the
      given label (suspicion 1 - p(given | x)), at the epoch picked by accuracy on a noisy
      validation split (`--validation_fraction` of the training data, held out after noise)
      and at its last epoch;
  (d) `cleanlab_find_label_issues` / `cleanlab_label_quality`: `cleanlab.filter.find_label_issues`
      and `cleanlab.rank.get_label_quality_scores` on `--folds`-fold out-of-fold probabilities
      of the plain classifier (each fold's model taken at the epoch its held-out fold's noisy
      labels pick), the way cleanlab recommends.

Every suspicion rule of `kmc.analysis.SUSPICIONS` is recorded as well for (a) and (c), at no
extra compute (`metacleaner:<rule>`, `baseline_picked:<rule>`). Compute is counted in images
passed through a network: training (epochs x steps x batch), the noisy-validation passes an
epoch choice needs, and scoring; wall time beside it. All training goes through
`kmc.training.run(TrainConfig(...))`, the code path of `tools/train.py`.

Records are appended to a JSONL file, one per (noise, seed, trained model), with the git commit
and a dirty flag read from git; rerunning skips what is there. `--report` renders the mean and
spread over seeds as Markdown.

    python benchmarks/label_issues.py                       # 3 noises x 3 seeds (hours on 2 CPUs)
    python benchmarks/label_issues.py --noises=symmetric:0.4 --seeds=0 --train_size=5000 \\
        --epochs=10 --out=/tmp/label_issues.jsonl           # a reduced check
    python benchmarks/label_issues.py --report              # the table
    python benchmarks/label_issues.py --tiny --out=/tmp/t.jsonl   # the format check of make test

cleanlab is a benchmark extra: `pip install keras-metacleaner[bench]` (or `pip install cleanlab`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # this checkout's library, not the installed (editable) one
OUT = os.path.join(ROOT, "benchmarks", "out", "label_issues.jsonl")
TEST_SIZE = 2000
NOISES = ("symmetric:0.4", "pairflip:0.45", "confusion:0.4")
UNITS = ("metacleaner", "baseline", "cleanlab")
# Rows of the report, in order: (method, what it is).
METHODS = {
    "metacleaner": "(a) our suspicion after MetaCleaner training",
    "metacleaner_alpha": "(b) α alone",
    "baseline_picked": "(c) plain classifier's p(given), noisy-val-picked epoch",
    "baseline_last": "(c) plain classifier's p(given), last epoch",
    "cleanlab_find_label_issues": "(d) cleanlab.filter.find_label_issues, out-of-fold",
    "cleanlab_label_quality": "(d) cleanlab.rank.get_label_quality_scores, out-of-fold",
}
METRICS = ("auroc", "average_precision", "precision_at_k")


@dataclasses.dataclass
class Settings:
    train_size: int = 10000
    epochs: int = 30
    batch_size: int = 128
    subset_size: int = 4
    learning_rate: float = 0.02
    folds: int = 5
    validation_fraction: float = 0.1
    tiny: bool = False


# ------------------------------------------------------------------ records
def git_state() -> dict:
    """The commit and whether tracked files differ from it, read from git."""

    def git(*args):
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        # Tracked changes anywhere, or new files in the code a run executes.
        changed = git("status", "--porcelain", "--untracked-files=no") or git(
            "status", "--porcelain", "--", "keras_metacleaner", "tools", "benchmarks/*.py"
        )
        return {"sha": git("rev-parse", "HEAD"), "dirty": bool(changed)}
    except (OSError, subprocess.CalledProcessError):
        return {"sha": None, "dirty": None}


def record_key(noise: str, seed: int, unit: str, settings: Settings) -> str:
    return json.dumps([noise, seed, unit, dataclasses.asdict(settings)], sort_keys=True)


def read_records(path: str) -> list[dict]:
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def append_record(path: str, record: dict) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


# --------------------------------------------------------------------- data
def _tiny_arrays(seed: int = 0) -> dict:
    """A learnable 4-class 8x8 set: a bright square per class on noise (no download)."""
    rng = np.random.default_rng(seed)

    def images(labels):
        x = rng.uniform(0, 60, (len(labels), 8, 8, 1))
        for i, c in enumerate(labels):
            top, left = divmod(int(c) * 2, 4)
            x[i, top : top + 4, left : left + 4] += 180.0
        return np.clip(x, 0, 255).astype(np.uint8)

    y_train = rng.permutation(np.repeat(np.arange(4), 48)).astype(np.int32)
    y_test = np.repeat(np.arange(4), 8).astype(np.int32)
    return {
        "x_train": images(y_train),
        "y_train": y_train,
        "x_test": images(y_test),
        "y_test": y_test,
        "class_names": np.array([f"class_{c}" for c in range(4)]),
    }


def load_arrays(settings: Settings) -> dict:
    """The first `train_size` training images of Fashion-MNIST (or the tiny set)."""
    if settings.tiny:
        arrays = _tiny_arrays()
    else:
        from keras_metacleaner.data.sources import fashion_mnist

        arrays = dict(fashion_mnist.load_arrays())
        arrays.setdefault("class_names", np.array(fashion_mnist.CLASS_NAMES))
    for key in ("x_train", "x_test"):
        if arrays[key].ndim == 3:
            arrays[key] = arrays[key][..., None]  # [n, H, W] -> [n, H, W, 1]
    n = min(settings.train_size, len(arrays["y_train"]))
    arrays["x_train"], arrays["y_train"] = arrays["x_train"][:n], arrays["y_train"][:n]
    # The test set only reports accuracy here (never counted as compute): a part suffices.
    arrays["x_test"], arrays["y_test"] = arrays["x_test"][:TEST_SIZE], arrays["y_test"][:TEST_SIZE]
    return arrays


def inject_noise(labels: np.ndarray, noise: str, num_classes: int, seed: int) -> np.ndarray:
    """`kind:rate` noise as `tools/train.py --noise_type=kind --noise_rate=rate` injects it.

    `confusion` flips along the committed confusion matrix of a clean Fashion-MNIST
    classifier, scaled to `rate` (`kmc.data.noise_from_spec`).
    """
    import keras_metacleaner as kmc

    kind, _, rate = noise.partition(":")
    spec = kmc.data.noise_from_spec(kind, float(rate), num_classes, "fashion_mnist")
    noisy, _ = spec.apply(labels, num_classes, seed=seed)
    return np.asarray(noisy, np.int32)


def _npz(path: str, data: dict, rows: np.ndarray) -> str:
    """An `npz:` source of the noisy training examples `rows` (true labels beside)."""
    np.savez(
        path,
        x_train=data["x"][rows],
        y_train=data["noisy"][rows],
        y_train_clean=data["clean"][rows],
        x_test=data["x_test"],
        y_test=data["y_test"],
        class_names=data["class_names"],
    )
    return path


# ----------------------------------------------------------------- training
@contextlib.contextmanager
def saving_last_weights(method: str, path: str):
    """While active, `method` also saves its last epoch's weights to `path` (`.weights.h5`).

    With `select_on="noisy_val"` the run keeps the picked epoch's weights in `model.keras`;
    this adds the last epoch's through the registry's own hook (`Method.callbacks`).
    """
    import keras

    from keras_metacleaner.training import methods

    class SaveLast(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            self.model.save_weights(path)

    original = methods.METHODS[method]
    methods.METHODS[method] = dataclasses.replace(
        original, callbacks=lambda model, config: [*original.callbacks(model, config), SaveLast()]
    )
    try:
        yield
    finally:
        methods.METHODS[method] = original


def train(method: str, dataset: str, model_dir: str, settings: Settings, seed: int, **extra):
    """One `kmc.training.run`; returns its results."""
    import keras_metacleaner as kmc

    config = kmc.training.TrainConfig(
        dataset=dataset,
        model_dir=model_dir,
        method=method,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        subset_size=settings.subset_size,
        learning_rate=settings.learning_rate,
        seed=seed,
        overwrite=True,
        alpha_auroc_examples=0,
        verbose=0,
        **extra,
    )
    return kmc.training.run(config)


def _picked(settings: Settings) -> dict:
    """Settings of a run that picks its epoch on a noisy validation split."""
    return {"validation_split": settings.validation_fraction, "select_on": "noisy_val"}


def _validation_images(results: dict, settings: Settings) -> int:
    return int(results["validation"]["size"]) * settings.epochs


def _trained_images(results: dict, settings: Settings) -> int:
    return int(results["steps_per_epoch"]) * settings.batch_size * settings.epochs


def _probabilities(model, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    import keras

    import keras_metacleaner as kmc

    if isinstance(model, kmc.MetaCleanerModel):
        model = model.inference_model()
    return np.concatenate(
        [
            keras.ops.convert_to_numpy(model(images[i : i + batch_size], training=False))
            for i in range(0, len(images), batch_size)
        ]
    ).astype(np.float64)


def _metrics(suspicion, is_wrong, flagged=None) -> dict:
    import keras_metacleaner as kmc

    return kmc.analysis.label_issue_metrics(suspicion, is_wrong, flagged)


def _rule_variants(prefix: str, scores, is_wrong) -> dict:
    import keras_metacleaner as kmc

    return {
        f"{prefix}:{rule}": _metrics(scores.with_suspicion(rule).suspicion, is_wrong)
        for rule in kmc.analysis.SUSPICIONS
    }


def run_metacleaner(data: dict, work: str, settings: Settings, seed: int) -> dict:
    import keras

    import keras_metacleaner as kmc

    n = len(data["noisy"])
    npz = _npz(os.path.join(work, "train.npz"), data, np.arange(n))
    started = time.time()
    results = train("metacleaner", f"npz:{npz}", os.path.join(work, "mc"), settings, seed)
    trained = time.time()
    model = keras.models.load_model(os.path.join(work, "mc", "model.keras"), compile=False)
    scores = kmc.analysis.score_labels(model, data["x"], data["noisy"], seed=seed)
    scored = time.time()
    wrong = data["noisy"] != data["clean"]
    compute = {
        "train_images": _trained_images(results, settings),
        "score_images": n,
        "train_seconds": trained - started,
        "score_seconds": scored - trained,
    }
    alpha = scores.with_suspicion("alpha")
    return {
        "methods": {
            "metacleaner": _metrics(scores.suspicion, wrong, scores.flagged()),
            "metacleaner_alpha": _metrics(alpha.suspicion, wrong, alpha.flagged()),
            **_rule_variants("metacleaner", scores, wrong),
        },
        "compute": compute,
        "suspicion_rule": scores.suspicion_rule,
        "final_test_accuracy": results["test_accuracy"],
    }


def run_baseline(data: dict, work: str, settings: Settings, seed: int) -> dict:
    """Plain training, the epoch picked on a noisy validation split (and the last epoch)."""
    import keras

    import keras_metacleaner as kmc

    n = len(data["noisy"])
    npz = _npz(os.path.join(work, "train.npz"), data, np.arange(n))
    last_weights = os.path.join(work, "last.weights.h5")
    started = time.time()
    with saving_last_weights("baseline", last_weights):
        results = train(
            "baseline",
            f"npz:{npz}",
            os.path.join(work, "baseline"),
            settings,
            seed,
            **_picked(settings),
        )
    trained = time.time()
    model = keras.models.load_model(os.path.join(work, "baseline", "model.keras"), compile=False)
    wrong = data["noisy"] != data["clean"]
    picked = kmc.analysis.score_labels(
        model, data["x"], data["noisy"], suspicion="label_probability"
    )
    model.load_weights(last_weights)
    last = kmc.analysis.score_labels(model, data["x"], data["noisy"], suspicion="label_probability")
    scored = time.time()
    return {
        "methods": {
            "baseline_picked": _metrics(picked.suspicion, wrong, picked.flagged()),
            "baseline_last": _metrics(last.suspicion, wrong, last.flagged()),
            **_rule_variants("baseline_picked", picked, wrong),
            **_rule_variants("baseline_last", last, wrong),
        },
        "compute": {
            "train_images": _trained_images(results, settings),
            "validation_images": _validation_images(results, settings),
            # Two scoring passes (picked and last weights); each method uses one of them.
            "score_images": n,
            "train_seconds": trained - started,
            "score_seconds": (scored - trained) / 2,
        },
        "picked_epoch": results["selection"]["epoch"],
        "picked_noisy_val_accuracy": results["selection"]["score"],
    }


def run_cleanlab(data: dict, work: str, settings: Settings, seed: int) -> dict:
    """`folds` plain trainings; out-of-fold probabilities; cleanlab's two rankings."""
    import keras

    try:
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores
    except ImportError as error:
        raise SystemExit(
            "label_issues.py: error: cleanlab is missing; pip install 'keras-metacleaner[bench]' "
            "(or pip install cleanlab)."
        ) from error
    n = len(data["noisy"])
    num_classes = len(data["class_names"])
    fold_of = np.random.default_rng(seed).permutation(n) % settings.folds
    probs = np.zeros((n, num_classes))
    train_images = validation_images = 0
    train_seconds = score_seconds = 0.0
    for fold in range(settings.folds):
        held, keep = np.flatnonzero(fold_of == fold), np.flatnonzero(fold_of != fold)
        npz = _npz(os.path.join(work, f"fold{fold}.npz"), data, keep)
        started = time.time()
        # Each fold's model picks its epoch on a noisy split of its own training part.
        results = train(
            "baseline",
            f"npz:{npz}",
            os.path.join(work, f"fold{fold}"),
            settings,
            seed,
            **_picked(settings),
        )
        trained = time.time()
        model = keras.models.load_model(
            os.path.join(work, f"fold{fold}", "model.keras"), compile=False
        )
        probs[held] = _probabilities(model, data["x"][held])
        train_images += _trained_images(results, settings)
        validation_images += _validation_images(results, settings)
        train_seconds += trained - started
        score_seconds += time.time() - trained
    wrong = data["noisy"] != data["clean"]
    started = time.time()
    ranked = find_label_issues(data["noisy"], probs, return_indices_ranked_by="self_confidence")
    quality = get_label_quality_scores(data["noisy"], probs)
    score_seconds += time.time() - started
    # find_label_issues gives a set, ranked: its issues first in its order, the rest tied.
    rank_score = np.zeros(n)
    rank_score[ranked] = 1.0 + np.arange(len(ranked))[::-1] / max(len(ranked), 1)
    flagged = np.zeros(n, bool)
    flagged[ranked] = True
    return {
        "methods": {
            "cleanlab_find_label_issues": _metrics(rank_score, wrong, flagged),
            "cleanlab_label_quality": _metrics(1.0 - quality, wrong, quality < 0.5),
        },
        "compute": {
            "train_images": train_images,
            "validation_images": validation_images,
            "score_images": n,
            "train_seconds": train_seconds,
            "score_seconds": score_seconds,
        },
    }


RUNNERS = {"metacleaner": run_metacleaner, "baseline": run_baseline, "cleanlab": run_cleanlab}


def run_grid(noises, seeds, units, settings: Settings, out: str, log=print) -> int:
    """Runs what `out` does not hold yet; returns how many records were added."""

    done = {r["key"] for r in read_records(out)}
    arrays = load_arrays(settings)
    num_classes = len(arrays["class_names"])
    added = 0
    for noise in noises:
        for seed in seeds:
            todo = [u for u in units if record_key(noise, seed, u, settings) not in done]
            if not todo:
                continue
            clean = np.asarray(arrays["y_train"], np.int32)
            noisy = inject_noise(clean, noise, num_classes, seed)
            data = {
                "x": np.asarray(arrays["x_train"]),
                "clean": clean,
                "noisy": noisy,
                "x_test": np.asarray(arrays["x_test"]),
                "y_test": np.asarray(arrays["y_test"], np.int32),
                "class_names": np.asarray(arrays["class_names"]),
            }
            for unit in todo:
                log(f"{noise} seed {seed}: {unit} ...")
                with tempfile.TemporaryDirectory(prefix="kmc-label-issues-") as work:
                    started = time.time()
                    result = RUNNERS[unit](data, work, settings, seed)
                record = {
                    "key": record_key(noise, seed, unit, settings),
                    "noise": noise,
                    "seed": seed,
                    "unit": unit,
                    "settings": dataclasses.asdict(settings),
                    "realised_noise_rate": float(np.mean(noisy != clean)),
                    "examples": len(noisy),
                    "wall_seconds": time.time() - started,
                    "commit": git_state(),
                    "versions": _versions(),
                    "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    **result,
                }
                append_record(out, record)
                added += 1
                summary = {m: round(v["auroc"], 4) for m, v in result["methods"].items()}
                log(f"  AUROC {json.dumps({m: summary[m] for m in METHODS if m in summary})}")
    return added


def _versions() -> dict:
    from importlib import metadata

    versions = {}
    for package in ("keras-metacleaner", "tensorflow", "keras", "cleanlab"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


# ------------------------------------------------------------------- report
def _images(compute: dict) -> int:
    return sum(compute.get(k, 0) for k in ("train_images", "validation_images", "score_images"))


def report(records: list[dict], variants: bool = False) -> str:
    """Markdown: one table per noise, mean ± spread over seeds for every method."""
    by_noise: dict[str, dict[str, list]] = {}
    for record in records:
        for method, metrics in record["methods"].items():
            if not variants and ":" in method:
                continue
            rows = by_noise.setdefault(record["noise"], {}).setdefault(method, [])
            rows.append((metrics, record["compute"], record["seed"], record["commit"]))
    if not by_noise:
        return "No records yet.\n"
    lines = []
    for noise in sorted(by_noise):
        methods = by_noise[noise]
        lines += [
            f"### {noise} ({len({s for rows in methods.values() for *_, s, _ in rows})} seeds)",
            "",
            "| method | AUROC | average precision | precision at k | flagged precision / "
            "recall | images through a network | vs cleanlab | wall s | seeds |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        reference = [_images(r[1]) for r in methods.get("cleanlab_label_quality", [])]
        order = [m for m in METHODS if m in methods] + sorted(
            m for m in methods if m not in METHODS
        )
        for method in order:
            rows = methods[method]

            def stat(key, rows=rows):
                values = np.array([r[0].get(key, np.nan) for r in rows], float)
                if np.isnan(values).all():
                    return "–"
                spread = f" ± {np.nanstd(values):.3f}" if len(values) > 1 else ""
                return f"{np.nanmean(values):.3f}{spread}"

            images = np.mean([_images(r[1]) for r in rows])
            seconds = np.mean(
                [r[1].get("train_seconds", 0) + r[1].get("score_seconds", 0) for r in rows]
            )
            cut = (
                f"{stat('flagged_precision')} / {stat('flagged_recall')}"
                if "flagged" in rows[0][0]
                else "–"
            )
            lines.append(
                f"| {method} | {stat('auroc')} | {stat('average_precision')} | "
                f"{stat('precision_at_k')} | {cut} | {images:,.0f} | "
                f"{f'{images / np.mean(reference):.2f}' if reference else '–'} | {seconds:.0f} | "
                f"{len(rows)} |"
            )
        lines.append("")
    commits = sorted(
        {
            (r["commit"]["sha"] or "?")[:10] + ("+dirty" if r["commit"]["dirty"] else "")
            for r in records
        }
    )
    lines.append(f"Commits: {', '.join(commits)}.")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------- main
def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--noises", default=",".join(NOISES), help="kind:rate, comma separated.")
    parser.add_argument("--seeds", default="0,1,2", help="Comma separated seeds.")
    parser.add_argument("--units", default=",".join(UNITS), help=f"Subset of {UNITS}.")
    parser.add_argument("--out", default=OUT, help="JSONL of records (appended, resumable).")
    parser.add_argument("--report", action="store_true", help="Print the Markdown table only.")
    parser.add_argument("--variants", action="store_true", help="Report every suspicion rule.")
    parser.add_argument("--tiny", action="store_true", help="Synthetic 4-class data, 1 epoch.")
    defaults = Settings()
    for field in dataclasses.fields(Settings):
        if field.name != "tiny":
            kind = {"int": int, "float": float}[str(field.type)]
            parser.add_argument(f"--{field.name}", type=kind, default=getattr(defaults, field.name))
    args = parser.parse_args(argv)

    def fail(message):
        parser.exit(2, f"label_issues.py: error: {message}\n")

    try:
        args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        fail(f"--seeds={args.seeds!r}: expected comma-separated integers.")
    args.noises = [s.strip() for s in args.noises.split(",") if s.strip()]
    for noise in args.noises:
        kind, _, rate = noise.partition(":")
        try:
            ok = kind in ("symmetric", "pairflip", "confusion") and 0 < float(rate) < 1
        except ValueError:
            ok = False
        if not ok:
            fail(
                f"--noises: {noise!r} is not kind:rate with kind symmetric, pairflip or confusion."
            )
    args.units = [s.strip() for s in args.units.split(",") if s.strip()]
    if not args.units or set(args.units) - set(UNITS):
        fail(f"--units={','.join(args.units)!r}: expected a subset of {list(UNITS)}.")
    if not args.seeds:
        fail("--seeds: give at least one seed.")
    if "cleanlab" in args.units and not args.report:
        import importlib.util

        if importlib.util.find_spec("cleanlab") is None:
            fail(
                "--units includes cleanlab, which is not installed: pip install "
                "'keras-metacleaner[bench]' (or pip install cleanlab), or pass "
                "--units=metacleaner,baseline."
            )
    if (
        args.folds < 2
        or args.epochs < 1
        or args.train_size < 8
        or not 0 < args.validation_fraction < 1
    ):
        fail(
            "--folds must be >= 2, --epochs >= 1, --train_size >= 8, "
            "--validation_fraction in (0, 1)."
        )
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    settings = Settings(
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(Settings) if f.name != "tiny"},
        tiny=args.tiny,
    )
    if args.tiny:
        settings = dataclasses.replace(
            settings, train_size=192, epochs=1, batch_size=16, folds=2, learning_rate=0.05
        )
    if not args.report:
        added = run_grid(args.noises, args.seeds, args.units, settings, args.out)
        print(f"{added} new record(s) in {args.out}")
    print(report(read_records(args.out), variants=args.variants))
    return 0


if __name__ == "__main__":
    sys.exit(main())
