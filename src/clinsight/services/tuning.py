"""Use case: hyper-parameter search with Ray Tune (ASHA), the best trial registered like any
model.

Every trial reports its validation AUC once per step (an image model: per epoch, on the
validation split; a risk model: per cross-validation repeat, the running mean of its
out-of-fold AUC), and ASHA stops the trials that trail at each rung. The test split is never
seen. The best configuration, among the trials that ran to the end, is then trained again by
the ordinary training service (`services.training.train_and_register`,
`services.risk_training.train_risk_model`), so its artifacts, card and registry entry are
those of any model; the search is recorded beside it.

A progression model reports its validation AUROC per epoch (its trainer keeps the epoch of
the best validation AUPRC; ASHA ranks by AUROC, the discrimination figure every kind
reports). Adding a kind: a space function, a trainable that calls `report_step` once per
step, and a function that registers the best configuration through that kind's training
service; `run_search` is shared.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clinsight.data.tabular import TabularDataset
from clinsight.data.tasks import get_task
from clinsight.errors import ModelError
from clinsight.imaging.specs import TrainConfig
from clinsight.inference.cluster import ray_session
from clinsight.sequence.training import SequenceEpoch, SequenceTrainConfig
from clinsight.services.progression import (
    ProgressionTrainingOutcome,
    load_set,
    model_bins,
    train_progression_model,
    training_split,
)
from clinsight.services.risk_training import RiskTrainingOutcome, train_risk_model
from clinsight.services.training import ImageTrainingOutcome, train_and_register

__all__ = [
    "SearchSettings",
    "TrialSummary",
    "TuningOutcome",
    "best_trial",
    "image_config",
    "image_space",
    "progression_config",
    "progression_space",
    "report_step",
    "risk_estimator",
    "risk_space",
    "run_search",
    "tune_image",
    "tune_progression",
    "tune_risk",
]

METRIC = "val_auc"


@dataclass(frozen=True)
class SearchSettings:
    """How large a search is and where it runs: `trials` sampled configurations (seeded),
    `workers` trials at once (one CPU each), Ray at `address` or a local instance."""

    trials: int = 8
    workers: int = 1
    seed: int = 0
    address: str | None = None
    object_store_mb: int = 256
    grace_steps: int = 1
    reduction_factor: int = 2


@dataclass(frozen=True)
class TrialSummary:
    """One trial: its configuration, its last validation AUC and how many steps it ran."""

    config: dict[str, Any]
    val_auc: float
    steps: int
    stopped_early: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"config": self.config, "val_auc": self.val_auc, "steps": self.steps,
                "stopped_early": self.stopped_early}  # fmt: skip


@dataclass(frozen=True)
class TuningOutcome:
    """Every trial, the best one, and what the training service registered for it."""

    trials: tuple[TrialSummary, ...]
    best: TrialSummary
    registered: ImageTrainingOutcome | RiskTrainingOutcome | ProgressionTrainingOutcome
    search_seconds: float

    @property
    def stopped_early(self) -> int:
        """Trials ASHA stopped before their last step."""
        return sum(trial.stopped_early for trial in self.trials)

    def to_dict(self) -> dict[str, Any]:
        """The search as recorded beside the model."""
        return {"scheduler": "ASHA", "metric": f"{METRIC} (validation)",
                "trials": [t.to_dict() for t in self.trials], "best": self.best.to_dict(),
                "stopped_early": self.stopped_early,
                "search_seconds": self.search_seconds}  # fmt: skip


def report_step(val_auc: float, step: int) -> None:
    """Report one step's validation AUC from inside a trial (ASHA may stop the trial here)."""
    from ray import tune

    tune.report({METRIC: float(val_auc), "step": step})


def run_search(
    trainable: Callable[..., None],
    space: Mapping[str, Any],
    *,
    max_steps: int,
    search: SearchSettings,
    storage: Path,
    **data: Any,
) -> tuple[list[TrialSummary], float]:
    """Run `search.trials` trials of `trainable` (called with a sampled config; `data`
    goes to it through Ray's object store) under ASHA; every trial's summary and the
    seconds the search took.

    Raises:
        ModelError: every trial failed.
        ConfigurationError: the Ray cluster cannot be reached.
    """
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    started = time.perf_counter()
    scheduler = ASHAScheduler(
        time_attr="training_iteration", max_t=max_steps, grace_period=search.grace_steps,
        reduction_factor=search.reduction_factor,
    )  # fmt: skip
    storage.mkdir(parents=True, exist_ok=True)
    with ray_session(search.address, num_cpus=search.workers,
                     object_store_mb=search.object_store_mb):  # fmt: skip
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(trainable, **data), {"cpu": 1}),
            param_space=dict(space),
            tune_config=tune.TuneConfig(
                metric=METRIC,
                mode="max",
                scheduler=scheduler,
                num_samples=search.trials,
                search_alg=BasicVariantGenerator(random_state=search.seed),
            ),
            run_config=tune.RunConfig(
                storage_path=str(storage.resolve()), name="search", verbose=0
            ),
        )
        grid = tuner.fit()
    trials = []
    for index in range(len(grid)):
        result = grid[index]
        if result.error is not None or not result.metrics or METRIC not in result.metrics:
            continue
        steps = int(result.metrics.get("training_iteration", 0))
        trials.append(TrialSummary(
            config={k: _plain(v) for k, v in (result.config or {}).items()},
            val_auc=float(result.metrics[METRIC]), steps=steps, stopped_early=steps < max_steps,
        ))  # fmt: skip
    if not trials:
        raise ModelError(
            f"Every trial of the search failed; see the trial logs under {storage}/search"
        )
    return trials, time.perf_counter() - started


def best_trial(trials: list[TrialSummary]) -> TrialSummary:
    """The highest validation AUC among the trials that ran every step (all trials if none
    did); ties go to the first sampled."""
    finished = [t for t in trials if not t.stopped_early] or trials
    return max(finished, key=lambda t: t.val_auc)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


# --- risk models ------------------------------------------------------------------------


def risk_space() -> dict[str, Any]:
    """The risk search: a model family and its main regularisation (`risk_estimator`)."""
    from ray import tune

    return {
        "family": tune.choice(["logistic", "gradient_boosting", "random_forest"]),
        "C": tune.loguniform(1e-2, 10.0),
        "learning_rate": tune.loguniform(0.02, 0.2),
        "max_leaf_nodes": tune.choice([4, 8, 16]),
        "max_iter": tune.choice([100, 200, 400]),
        "l2_regularization": tune.loguniform(0.1, 10.0),
        "min_samples_leaf": tune.choice([1, 3, 10, 20]),
        "max_features": tune.choice(["sqrt", 0.5]),
    }


def risk_estimator(config: Mapping[str, Any], seed: int = 0) -> Any:
    """The unfitted estimator of a sampled risk configuration (its family's parameters).

    Raises:
        ModelError: the family is unknown.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    family = config["family"]
    if family == "logistic":
        return LogisticRegression(C=float(config["C"]), max_iter=2000)
    if family == "gradient_boosting":
        return HistGradientBoostingClassifier(
            learning_rate=float(config["learning_rate"]),
            max_leaf_nodes=int(config["max_leaf_nodes"]), max_iter=int(config["max_iter"]),
            min_samples_leaf=20, l2_regularization=float(config["l2_regularization"]),
            early_stopping=False, random_state=seed,
        )  # fmt: skip
    if family == "random_forest":
        return RandomForestClassifier(
            n_estimators=200, min_samples_leaf=int(config["min_samples_leaf"]),
            max_features=config["max_features"], n_jobs=1, random_state=seed,
        )  # fmt: skip
    raise ModelError(f"unknown risk model family {family!r}")


def _risk_trial(
    config: dict[str, Any], *, X: pd.DataFrame,  # noqa: N803
    y: np.ndarray, feature_types: dict[str, Any],
    categories: dict[str, Any], n_splits: int, n_repeats: int, seed: int,
) -> None:  # fmt: skip
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import RepeatedStratifiedKFold

    from clinsight.tabular.models import RiskModel

    folds = RepeatedStratifiedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=seed)
    aucs: list[float] = []
    for index, (fit, held) in enumerate(folds.split(X, y)):
        model = RiskModel(feature_types=feature_types, categories=categories,
                          model=risk_estimator(config, seed), calibration="none",
                          random_state=seed).fit(X.iloc[fit], y[fit])  # fmt: skip
        aucs.append(float(roc_auc_score(y[held], model.raw_log_odds(X.iloc[held]))))
        if (index + 1) % n_splits == 0:
            report_step(float(np.mean(aucs)), (index + 1) // n_splits)


def tune_risk(
    dataset: TabularDataset,
    *,
    registry_dir: Path,
    name: str,
    storage: Path,
    search: SearchSettings,
    n_splits: int = 5,
    n_repeats: int = 3,
    thresholds: Mapping[str, float] | None = None,
) -> TuningOutcome:
    """Search risk-model configurations by repeated CV (ASHA over repeats), then select,
    calibrate, evaluate and register the best one with `train_risk_model`.

    Raises:
        DataError: the data cannot support the requested CV.
        ModelError: every trial failed.
        RegistryError: the model could not be registered.
    """
    categories = {f.name: f.categories for f in dataset.spec.features if f.categories}
    trials, seconds = run_search(
        _risk_trial, risk_space(), max_steps=n_repeats, search=search, storage=storage,
        X=dataset.X, y=dataset.y.to_numpy().astype(np.int64),
        feature_types=dict(dataset.feature_types), categories=categories, n_splits=n_splits,
        n_repeats=n_repeats, seed=search.seed,
    )  # fmt: skip
    best = best_trial(trials)
    label = f"{best.config['family']} (tuned)"
    outcome = train_risk_model(
        dataset, registry_dir=registry_dir, name=name,
        candidates={label: {"model": risk_estimator(best.config, search.seed)}},
        n_splits=n_splits, n_repeats=n_repeats, thresholds=thresholds, seed=search.seed,
    )  # fmt: skip
    return TuningOutcome(tuple(trials), best, outcome, seconds)


# --- image models -----------------------------------------------------------------------


def image_space() -> dict[str, Any]:
    """The image search: learning rate, weight decay, width, batch size, class weighting."""
    from ray import tune

    return {
        "learning_rate": tune.loguniform(3e-4, 1e-2),
        "weight_decay": tune.loguniform(1e-3, 0.1),
        "width": tune.choice([16, 24, 32]),
        "batch_size": tune.choice([32, 64, 128]),
        "class_weighting": tune.choice(["none", "inverse", "effective"]),
    }


def image_config(base: TrainConfig, config: Mapping[str, Any], epochs: int) -> TrainConfig:
    """`base` with a sampled configuration, `epochs` epochs and no early stopping (ASHA
    decides when a trial ends)."""
    return replace(
        base, learning_rate=float(config["learning_rate"]),
        weight_decay=float(config["weight_decay"]), width=int(config["width"]),
        batch_size=int(config["batch_size"]), class_weighting=str(config["class_weighting"]),
        epochs=epochs, patience=epochs, min_epochs=epochs, time_budget_minutes=None,
        ensemble=1, threads=1,
    )  # fmt: skip


def _image_trial(
    config: dict[str, Any], *, data_dir: str, dataset: str, size: int, base: TrainConfig,
    epochs: int,
) -> None:  # fmt: skip
    from clinsight.data.medmnist import load_medmnist
    from clinsight.imaging.training import EpochRecord, train_image_model

    def on_epoch(record: EpochRecord, planned: int) -> None:
        report_step(record.val_auc if math.isfinite(record.val_auc) else 0.0, record.epoch)

    data = load_medmnist(Path(data_dir), dataset, size)
    train_image_model(data, image_config(base, config, epochs), progress=on_epoch)


def tune_image(
    data_dir: Path,
    registry_dir: Path,
    dataset: str,
    base: TrainConfig,
    *,
    size: int = 28,
    epochs: int = 10,
    name: str | None = None,
    run_dir: Path,
    search: SearchSettings,
    n_bootstrap: int = 1000,
) -> TuningOutcome:
    """Search image training configurations (ASHA over epochs, validation AUC), then train
    the best with `train_and_register` (evaluated on the test split once, registered).

    Raises:
        DataNotFoundError, ChecksumError: the dataset file is missing or corrupt.
        ModelError: every trial failed, or training failed.
        RegistryError: the model could not be registered.
    """
    trials, seconds = run_search(
        _image_trial, image_space(), max_steps=epochs, search=search,
        storage=run_dir / "tune", data_dir=str(data_dir), dataset=dataset, size=size,
        base=base, epochs=epochs,
    )  # fmt: skip
    best = best_trial(trials)
    outcome = train_and_register(
        data_dir, registry_dir, dataset, image_config(base, best.config, epochs),
        size=size, name=name, run_dir=run_dir / "best", n_bootstrap=n_bootstrap,
    )  # fmt: skip
    return TuningOutcome(tuple(trials), best, outcome, seconds)


# --- progression models -----------------------------------------------------------------


def progression_space() -> dict[str, Any]:
    """The progression search: architecture, size, dropout, learning rate, weight decay."""
    from ray import tune

    return {
        "architecture": tune.choice(["grud", "gru", "lstm", "retain"]),
        "hidden": tune.choice([32, 64, 128]),
        "dropout": tune.uniform(0.1, 0.5),
        "learning_rate": tune.loguniform(5e-4, 1e-2),
        "weight_decay": tune.loguniform(1e-4, 1e-2),
    }


def progression_config(
    base: SequenceTrainConfig, config: Mapping[str, Any], epochs: int
) -> SequenceTrainConfig:
    """`base` with a sampled configuration, `epochs` epochs and no early stopping (ASHA
    decides when a trial ends)."""
    return replace(
        base, architecture=str(config["architecture"]), hidden=int(config["hidden"]),
        dropout=float(config["dropout"]), learning_rate=float(config["learning_rate"]),
        weight_decay=float(config["weight_decay"]), epochs=epochs, patience=epochs,
        min_epochs=epochs, time_budget_minutes=None, threads=1,
    )  # fmt: skip


def _progression_trial(
    config: dict[str, Any], *, train: Any, validation: Any, base: SequenceTrainConfig,
    epochs: int,
) -> None:  # fmt: skip
    from clinsight.sequence.model import fit_progression_model

    def on_epoch(record: SequenceEpoch, planned: int) -> None:
        auroc = record.val_auroc if math.isfinite(record.val_auroc) else 0.0
        report_step(auroc, record.epoch)

    fit_progression_model(train, validation, model_bins(),
                          progression_config(base, config, epochs), progress=on_epoch)  # fmt: skip


def tune_progression(
    folder: Path,
    outcomes: Path,
    base: SequenceTrainConfig,
    *,
    registry_dir: Path,
    name: str,
    storage: Path,
    search: SearchSettings,
    epochs: int = 10,
    task_name: str = "mortality48",
    bootstrap: int = 1000,
) -> TuningOutcome:
    """Search progression configurations (ASHA over epochs, validation AUROC) on the
    training part of the set, then train the best with `train_progression_model` (the
    same split; calibrated and registered like any progression model).

    Raises:
        DataError: the set is malformed or too small to split.
        ModelError: every trial failed, or training failed.
        RegistryError: the model could not be registered.
    """
    arrays, _ = load_set(folder, outcomes, get_task(task_name))
    train, validation = training_split(arrays)
    trials, seconds = run_search(
        _progression_trial, progression_space(), max_steps=epochs, search=search,
        storage=storage, train=train, validation=validation, base=base, epochs=epochs,
    )  # fmt: skip
    best = best_trial(trials)
    outcome = train_progression_model(
        folder, outcomes, registry_dir=registry_dir, name=name,
        config=progression_config(base, best.config, epochs), task_name=task_name,
        bootstrap=bootstrap,
    )  # fmt: skip
    return TuningOutcome(tuple(trials), best, outcome, seconds)
