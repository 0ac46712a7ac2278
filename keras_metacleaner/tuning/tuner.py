"""`TrainingTuner`: a KerasTuner search whose trials are full training runs.

Each trial runs `keras_metacleaner.training.run` with the recipe's settings
and the trial's method, subset size, batch and learning rate, in its own
directory, and reports the accuracy on the validation split the run held out
of the noisy training labels (what a user without clean labels has). A
search interrupted at any point resumes: KerasTuner reloads the finished
trials, and the interrupted trial's run resumes from its last epoch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import keras_tuner
from keras_tuner.engine import base_tuner

from keras_metacleaner.training.results import read_json, write_json_atomic
from keras_metacleaner.tuning.space import BASELINE, SearchSpace

TUNERS = ("random", "bayesian", "hyperband")
#: The objective every trial reports (the validation kind is in each row of `trial_table`).
OBJECTIVE = "validation_accuracy"
#: Files `write_best` leaves in the search directory.
BEST_HYPERPARAMETERS = "best_hyperparameters.json"
BEST_FLAGS = "best.flags"
_RUN = "run"  # a trial's training run directory, under the trial's own directory
# MetaCleaner options a single-image method must not be given (the recipe may set them).
_CLEANER_OPTIONS = ("weighting", "member_loss_weight", "subset_loss_weights")


def validation_score(results: dict) -> tuple[float, str, int | None]:
    """The validation accuracy a finished run reports, and which validation it is.

    The run's selected weights' score (`results["selection"]["score"]`) when
    it has one, else its last epoch's `noisy_val_accuracy`.

    Args:
        results: a run's `results.json` content.

    Returns:
        `(accuracy, kind, size)`: kind `"noisy"` (held out of the noisy
        training labels) or `"clean"` (a split the source ships).

    Raises:
        ValueError: the run had no validation split.

    Example:

    >>> validation_score({"validation": {"kind": "noisy", "size": 500},
    ...                   "selection": {"select_on": "noisy_val", "epoch": 3, "score": 0.81}})
    (0.81, 'noisy', 500)
    """
    validation = results.get("validation") or {}
    kind = validation.get("kind")
    rows = [
        row for row in results.get("history") or [] if row.get("noisy_val_accuracy") is not None
    ]
    if not kind:
        raise ValueError(
            "the run held out no validation split (results.json has validation.kind=null): "
            "set validation_split > 0 (--validation_split), or use a source that ships one."
        )
    score = (results.get("selection") or {}).get("score")
    if score is None:
        if not rows:
            raise ValueError("results.json has no noisy_val_accuracy in its history.")
        score = rows[-1]["noisy_val_accuracy"]
    return float(score), str(kind), validation.get("size")


def _grouped_methods() -> list[str] | None:
    from keras_metacleaner import training

    methods = training.METHODS
    if isinstance(methods, dict):
        return [name for name, spec in methods.items() if getattr(spec, "grouped", True)]
    return None  # a plain list of names: every method but the baseline groups


def _make_oracle(kind: str, space: SearchSpace, max_trials: int, epochs: int, seed: int):
    """A KerasTuner oracle of `kind` whose first trial is the baseline."""
    if kind not in TUNERS:
        raise ValueError(f"tuner={kind!r}: expected one of {TUNERS}.")
    base = {
        "random": keras_tuner.oracles.RandomSearchOracle,
        "bayesian": keras_tuner.oracles.BayesianOptimizationOracle,
        "hyperband": keras_tuner.oracles.HyperbandOracle,
    }[kind]
    baseline = space.baseline_values()
    hyperband = kind == "hyperband"

    class BaselineFirst(base):
        def populate_space(self, trial_id):
            done = any(
                t.hyperparameters.values.get("method") == BASELINE for t in self.trials.values()
            )
            if not done:
                values = dict(baseline)
                if hyperband:
                    values.update(
                        {
                            "tuner/epochs": epochs,
                            "tuner/initial_epoch": 0,
                            "tuner/bracket": -1,
                            "tuner/round": 0,
                        }
                    )
                return {"status": "RUNNING", "values": values}
            return super().populate_space(trial_id)

    objective = keras_tuner.Objective(OBJECTIVE, "max")
    if hyperband:
        oracle = BaselineFirst(objective=objective, max_epochs=epochs, factor=3, seed=seed)
        oracle.max_trials = max_trials
    else:
        oracle = BaselineFirst(objective=objective, max_trials=max_trials, seed=seed)
    return oracle


class TrainingTuner(base_tuner.BaseTuner):
    """Searches method, subset size N and learning rate with full training runs as trials.

    Every trial trains with `train_fn(config, strategy)` (by default
    `keras_metacleaner.training.run`) where `config` is `config` with the
    trial's `method`, `subset_size`, `batch_size` (K·N) and `learning_rate`,
    `model_dir` set to `<directory>/<project_name>/trial_<id>/run` and no
    export. The first trial is always plain training (`method="baseline"`),
    so the search compares against it. The objective is the run's
    validation accuracy (`validation_score`): the noisy split
    `config.validation_split` holds out, or a clean one the source ships.
    With `tuner="hyperband"` a trial trains its `tuner/epochs` epochs from
    scratch (no warm start from the earlier round).

    Args:
        config: the recipe, a `keras_metacleaner.training.TrainConfig`.
        space: the `SearchSpace`.
        tuner: `"random"`, `"bayesian"` or `"hyperband"`.
        max_trials: trials in all, the baseline included.
        directory: where the search lives (rerun with the same to resume).
        project_name: subdirectory of `directory`.
        strategy: a `tf.distribute.Strategy` for every trial (None: each run
            creates its own from `config.strategy`).
        train_fn: `(config, strategy) -> results dict`.
        overwrite: start afresh, deleting an earlier search in the same place.

    Example:

    >>> import keras_metacleaner as kmc
    >>> config = kmc.training.TrainConfig("fashion_mnist", "unused", epochs=3)
    >>> tuner = TrainingTuner(config, SearchSpace(subset_sizes=(2, 4)), max_trials=3,
    ...                       directory="runs/search")  # doctest: +SKIP
    >>> tuner.search()  # doctest: +SKIP
    >>> print(format_trial_table(trial_table(tuner)))  # doctest: +SKIP
    """

    def __init__(
        self,
        config,
        space: SearchSpace,
        tuner: str = "random",
        max_trials: int = 6,
        directory: str = "runs/search",
        project_name: str = "search",
        strategy=None,
        train_fn: Callable[..., dict] | None = None,
        overwrite: bool = False,
    ):
        if max_trials < 1:
            raise ValueError(f"max_trials={max_trials} must be >= 1.")
        if space.grouped_methods is None:
            space.grouped_methods = _grouped_methods()
        oracle = _make_oracle(tuner, space, max_trials, int(config.epochs), int(config.seed))
        space.declare(oracle.hyperparameters)
        self.config = config
        self.space = space
        self.kind = tuner
        self.strategy = strategy
        if train_fn is None:
            from keras_metacleaner import training

            train_fn = training.run
        self.train_fn = train_fn
        super().__init__(
            oracle, directory=directory, project_name=project_name, overwrite=overwrite
        )

    def trial_config(self, trial_id: str, values: dict):
        """The `TrainConfig` of a trial with these hyper-parameter values."""
        settings = self.space.settings(values)
        settings["model_dir"] = os.path.join(self.get_trial_dir(trial_id), _RUN)
        settings["export_dir"] = None
        settings["overwrite"] = False
        if "tuner/epochs" in values:
            settings["epochs"] = int(values["tuner/epochs"])
        if settings["method"] not in self.space.grouped and hasattr(self.config, "model"):
            # The recipe may override MetaCleaner options; a single-image method takes none.
            settings.update({name: None for name in _CLEANER_OPTIONS})
        return self.config.replace(**settings)

    def run_trial(self, trial, *args, **kwargs) -> dict:
        config = self.trial_config(trial.trial_id, trial.hyperparameters.values)
        results_path = os.path.join(config.model_dir, "results.json")
        results = None
        if os.path.isfile(results_path):  # finished before an interruption: reuse it
            try:
                results = read_json(results_path)
            except (OSError, ValueError):
                results = None
            if not isinstance(results, dict) or "history" not in results:
                results = None
        if results is None:
            results = self.train_fn(config, self.strategy)
        score, kind, size = validation_score(results)
        write_json_atomic(
            os.path.join(self.get_trial_dir(trial.trial_id), "trial_summary.json"),
            {
                "trial_id": trial.trial_id,
                "settings": self.space.settings(trial.hyperparameters.values),
                "epochs": int(config.epochs),
                OBJECTIVE: score,
                "validation": {"kind": kind, "size": size},
                "test_accuracy": results.get("test_accuracy"),
                "model_path": results.get("model_path"),
                "class_names": results.get("class_names"),
            },
        )
        return {OBJECTIVE: score}

    def summary_of(self, trial_id: str) -> dict | None:
        """The `trial_summary.json` a finished trial wrote, or None."""
        path = os.path.join(self.get_trial_dir(trial_id), "trial_summary.json")
        return read_json(path) if os.path.isfile(path) else None

    # BaseTuner's model hooks: trials save their own model.keras through `train_fn`.
    def save_model(self, trial_id, model, step=0):
        pass

    def load_model(self, trial):
        import keras

        summary = self.summary_of(trial.trial_id)
        return keras.saving.load_model(summary["model_path"])


def trial_table(tuner: TrainingTuner) -> list[dict]:
    """One row per trial, best validation accuracy first (unfinished trials last).

    Returns:
        Dicts with `trial`, `status`, `method`, `subset_size`, `batch_size`,
        `learning_rate`, `epochs`, `validation_accuracy`, `validation` (kind)
        and `test_accuracy` (reported only, never used to choose).
    """
    rows = []
    for trial_id, trial in tuner.oracle.trials.items():
        settings = tuner.space.settings(trial.hyperparameters.values)
        summary = tuner.summary_of(trial_id) or {}
        rows.append(
            {
                "trial": trial_id,
                "status": trial.status,
                "method": settings["method"],
                "subset_size": settings.get("subset_size"),
                "batch_size": settings["batch_size"],
                "learning_rate": settings["learning_rate"],
                "epochs": summary.get("epochs"),
                OBJECTIVE: summary.get(OBJECTIVE),
                "validation": (summary.get("validation") or {}).get("kind"),
                "test_accuracy": summary.get("test_accuracy"),
            }
        )
    rows.sort(key=lambda r: (r[OBJECTIVE] is None, -(r[OBJECTIVE] or 0.0), r["trial"]))
    return rows


def format_trial_table(rows: list[dict]) -> str:
    """A plain-text table of `trial_table` rows."""
    columns = [
        ("trial", "trial", str),
        ("method", "method", str),
        ("N", "subset_size", lambda v: "-" if v is None else str(v)),
        ("batch", "batch_size", str),
        ("lr", "learning_rate", lambda v: f"{v:g}"),
        ("epochs", "epochs", lambda v: "-" if v is None else str(v)),
        ("val acc", OBJECTIVE, lambda v: "-" if v is None else f"{100 * v:.2f}%"),
        ("val", "validation", lambda v: v or "-"),
        ("test acc", "test_accuracy", lambda v: "-" if v is None else f"{100 * v:.2f}%"),
        ("status", "status", str),
    ]
    cells = [[title for title, _, _ in columns]]
    cells += [[fmt(row.get(key)) for _, key, fmt in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(line, widths)) for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def best_trial(tuner: TrainingTuner):
    """The finished trial with the highest validation accuracy."""
    trials = tuner.oracle.get_best_trials(1)
    if not trials:
        raise ValueError("no trial of the search has finished.")
    return trials[0]


def best_flags(tuner: TrainingTuner) -> str:
    """`tools/train.py` flags of the best trial (after `--flagfile=<recipe>`)."""
    trial = best_trial(tuner)
    settings = tuner.space.settings(trial.hyperparameters.values)
    summary = tuner.summary_of(trial.trial_id) or {}
    lines = [
        f"# Best of the {tuner.kind} search in {tuner.project_dir}: trial {trial.trial_id}, "
        f"{OBJECTIVE}={summary.get(OBJECTIVE, trial.score):.4f} "
        f"({(summary.get('validation') or {}).get('kind', '?')} validation split).",
        "# Use after the recipe: tools/train.py --flagfile=<recipe> --flagfile=best.flags",
        f"# (the trials trained {summary.get('epochs', tuner.config.epochs)} epochs; the "
        "recipe's --epochs applies here).",
        f"--method={settings['method']}",
    ]
    if "subset_size" in settings:
        lines.append(f"--subset_size={settings['subset_size']}")
    lines.append(f"--batch_size={settings['batch_size']}")
    lines.append(f"--learning_rate={settings['learning_rate']:g}")
    return "\n".join(lines) + "\n"


def write_best(tuner: TrainingTuner, directory: str) -> dict[str, str]:
    """Writes `best_hyperparameters.json` and `best.flags` of the best trial into `directory`.

    Returns:
        `{"json": path, "flags": path}`.
    """
    trial = best_trial(tuner)
    summary = tuner.summary_of(trial.trial_id) or {}
    record: dict[str, Any] = {
        "trial_id": trial.trial_id,
        "tuner": tuner.kind,
        "hyperparameters": {
            k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")
        },
        "settings": tuner.space.settings(trial.hyperparameters.values),
        "objective": {
            "name": OBJECTIVE,
            "value": summary.get(OBJECTIVE, trial.score),
            "validation": summary.get("validation"),
        },
        "test_accuracy": summary.get("test_accuracy"),
        "model_path": summary.get("model_path"),
    }
    os.makedirs(directory, exist_ok=True)
    json_path = os.path.join(directory, BEST_HYPERPARAMETERS)
    flags_path = os.path.join(directory, BEST_FLAGS)
    write_json_atomic(json_path, record)
    with open(flags_path + ".tmp", "w") as f:
        f.write(best_flags(tuner))
    os.replace(flags_path + ".tmp", flags_path)
    return {"json": json_path, "flags": flags_path}


def export_best(tuner: TrainingTuner, export_dir: str) -> str:
    """Exports the best trial's model for TF Serving; returns the SavedModel path."""
    from keras_metacleaner import export

    trial = best_trial(tuner)
    summary = tuner.summary_of(trial.trial_id) or {}
    model = tuner.load_model(trial)
    return export.export_for_serving(model, export_dir, class_names=summary.get("class_names"))


def read_best(directory: str) -> dict:
    """The `best_hyperparameters.json` a search wrote into `directory`."""
    with open(os.path.join(directory, BEST_HYPERPARAMETERS)) as f:
        return json.load(f)
