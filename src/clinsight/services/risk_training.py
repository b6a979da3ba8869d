"""Use case: choose, calibrate and evaluate a risk model on a table, and register it with its card.

Model selection is `tabular.select_model` (repeated stratified CV over the candidates).
The card's metrics then come from a second repeated CV of the chosen configuration *with*
its calibration: every patient gets one out-of-fold calibrated risk per repeat; AUC, Brier
and ECE are averaged over repeats (with their range), and the threshold metrics carry
95 % bootstrap intervals computed on the repeat-averaged out-of-fold risks. Subgroup
metrics (sex, age band) use the same out-of-fold risks.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from numpy.typing import NDArray
from sklearn.model_selection import RepeatedStratifiedKFold

from clinsight.data.medmnist import TaskType
from clinsight.data.population import ValidatedPopulation, population_of
from clinsight.data.tabular import FeatureType, TabularDataset, TaskSpec
from clinsight.errors import DataError
from clinsight.evaluation.calibration import brier_score, expected_calibration_error
from clinsight.evaluation.metrics import classification_metrics, roc_auc
from clinsight.evaluation.subgroups import subgroup_reports
from clinsight.registry.risk import RiskModelVersion, register_risk_model
from clinsight.tabular.models import DEFAULT_CANDIDATES, ModelSelection, RiskModel, select_model

__all__ = [
    "RiskTrainingOutcome",
    "cross_validated_metrics",
    "reference_sample",
    "subset_features",
    "train_risk_model",
    "training_population",
]

LIMITATIONS = (
    "Evaluated by cross-validation on a single data set; performance at another site, in "
    "another population or at another prevalence is unknown until validated externally "
    "(`clinsight risk validate`).",
    "Probabilities are calibrated on the training data; recalibrate on a labelled local "
    "sample before relying on the absolute risk.",
    "Missing inputs are imputed (median or most frequent) with a missing-value indicator; a "
    "risk computed with many missing inputs is less reliable, and the missing inputs are "
    "listed with every assessment.",
    "Decision support only: the risk and its explanation must be reviewed by a clinician.",
)


@dataclass(frozen=True)
class RiskTrainingOutcome:
    """The selection, the cross-validated metrics and the registered version (if any)."""

    selection: ModelSelection
    metrics: dict[str, Any]
    version: RiskModelVersion | None


def subset_features(dataset: TabularDataset, features: Sequence[str]) -> TabularDataset:
    """The dataset restricted to `features` (e.g. those a FHIR source can supply).

    Raises:
        DataError: a name is not a feature of the dataset.
    """
    unknown = [f for f in features if f not in dataset.spec.feature_names]
    if unknown:
        raise DataError(
            f"{unknown[0]!r} is not a feature of {dataset.spec.name}; "
            f"choose from {dataset.spec.feature_names}."
        )
    kept = tuple(f for f in dataset.spec.features if f.name in features)
    spec = replace(
        dataset.spec, features=kept,
        sex_column=dataset.spec.sex_column if dataset.spec.sex_column in features else None,
        age_column=dataset.spec.age_column if dataset.spec.age_column in features else None,
    )  # fmt: skip
    return TabularDataset(
        dataset.X[spec.feature_names],
        dataset.y,
        spec,
        dataset.sha256,
        dataset.source,
        dataset.notes,
        dataset.plausibility,
    )


def reference_sample(
    features: pd.DataFrame, task: TaskSpec, size: int = 25
) -> dict[str, list[Any]]:
    """A synthetic background of `size` rows: per feature, evenly spaced quantiles of its
    observed values (categories in proportion to their frequency), so no patient's row is
    stored with the model. Missing values are skipped (a feature never observed stays None)."""
    sample: dict[str, list[Any]] = {}
    levels = [(i + 0.5) / size for i in range(size)]
    for feature in task.features:
        values = features[feature.name].dropna()
        if values.empty:
            sample[feature.name] = [None] * size
        elif feature.type is FeatureType.CATEGORICAL:
            ordered = values.astype(str).sort_values().tolist()
            sample[feature.name] = [ordered[int(q * len(ordered))] for q in levels]
        else:
            quantiles = values.astype(float).quantile(levels).tolist()
            if feature.type is FeatureType.BINARY:
                quantiles = [float(round(q)) for q in quantiles]
            sample[feature.name] = quantiles
    return sample


def training_population(dataset: TabularDataset) -> ValidatedPopulation:
    """The population `dataset` covers: ages from the spec's age column, sexes from its sex
    column (or ``population_sex``), the site from ``site`` (default: the task name).

    Raises:
        DataError: the sex column holds a code the spec's ``sex_codes`` do not map.
    """
    spec = dataset.spec
    return population_of(
        dataset.X, site=spec.site or spec.name, age_column=spec.age_column,
        sex_column=spec.sex_column, sex_codes=spec.sex_codes, population_sex=spec.population_sex,
    )  # fmt: skip


def _oof_risks(
    params: Mapping[str, Any], dataset: TabularDataset, n_splits: int, n_repeats: int, seed: int
) -> NDArray[np.float64]:
    """Calibrated out-of-fold risks, shape (n_repeats, n_rows)."""
    y = dataset.y.to_numpy()
    risks = np.zeros((n_repeats, len(y)))
    folds = RepeatedStratifiedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=seed)
    for index, (fit, held) in enumerate(folds.split(dataset.X, y)):
        model = RiskModel(**params).fit(dataset.X.iloc[fit], y[fit])
        risks[index // n_splits, held] = model.predict_proba(dataset.X.iloc[held])[:, 1]
    return risks


def _spread(values: list[float]) -> dict[str, Any]:
    return {"mean": float(np.mean(values)), "repeats": [float(v) for v in values]}


def cross_validated_metrics(
    params: Mapping[str, Any],
    dataset: TabularDataset,
    *,
    n_splits: int = 5,
    n_repeats: int = 3,
    threshold: float = 0.5,
    seed: int = 0,
) -> dict[str, Any]:
    """Card metrics of the `RiskModel(**params)` configuration by repeated stratified CV.

    Raises:
        DataError: the outcome has fewer than `n_splits` rows of a class.
    """
    y = dataset.y.to_numpy().astype(np.int64)
    if np.bincount(y, minlength=2).min() < n_splits:
        raise DataError(f"each outcome needs at least {n_splits} rows for {n_splits}-fold CV.")
    risks = _oof_risks(params, dataset, n_splits, n_repeats, seed)
    per_repeat: dict[str, list[float]] = {"auc": [], "brier": [], "ece": []}
    for risk in risks:
        probs = np.column_stack([1 - risk, risk])
        per_repeat["auc"].append(roc_auc(y, risk))
        per_repeat["brier"].append(brier_score(y, probs, TaskType.BINARY))
        per_repeat["ece"].append(expected_calibration_error(y, probs, TaskType.BINARY))
    mean_risk = risks.mean(axis=0)
    report = classification_metrics(
        y, np.column_stack([1 - mean_risk, mean_risk]), TaskType.BINARY, threshold=threshold,
        seed=seed,
    )  # fmt: skip
    spec, frame = dataset.spec, dataset.X
    subgroups = subgroup_reports(
        y, mean_risk, threshold=threshold,
        sex=frame[spec.sex_column].to_numpy() if spec.sex_column else None,
        sex_labels={0.0: "female", 1.0: "male"} if spec.sex_column else None,
        age=frame[spec.age_column].to_numpy() if spec.age_column else None,
    )  # fmt: skip
    return {
        "protocol": f"{n_splits}-fold stratified CV repeated {n_repeats} times (seed {seed}); "
        "cross_validation: mean and value of each repeat; at_threshold: 95 % bootstrap "
        "intervals on the repeat-averaged out-of-fold risks",
        "cross_validation": {name: _spread(v) for name, v in per_repeat.items()},
        "at_threshold": {
            k: v for k, v in report.to_dict().items() if k in ("values", "intervals", "threshold")
        },
        "subgroups": {k: _subgroup_table(r.to_dict()) for k, r in subgroups.items()},
    }


def _subgroup_table(report: Mapping[str, Any]) -> dict[str, Any]:
    groups = {
        g["group"]: {k: g[k] for k in ("n", "prevalence", "auc", "sensitivity", "specificity")}
        for g in report["groups"]
    }
    return {**groups, "gaps": report["gaps"]}


def train_risk_model(
    dataset: TabularDataset,
    *,
    registry_dir: Path | None,
    name: str,
    candidates: Mapping[str, Mapping[str, Any]] | None = None,
    n_splits: int = 5,
    n_repeats: int = 3,
    thresholds: Mapping[str, float] | None = None,
    seed: int = 0,
) -> RiskTrainingOutcome:
    """Select, fit, evaluate and (with a `registry_dir`) register a risk model for `dataset`.

    Raises:
        DataError: the data cannot support the requested CV.
        ModelError: a candidate names an unknown model.
        RegistryError: the model could not be registered.
    """
    selection = select_model(
        dataset.X, dataset.y.to_numpy(), dataset.feature_types,
        categories={f.name: f.categories for f in dataset.spec.features if f.categories},
        candidates=candidates or DEFAULT_CANDIDATES, n_splits=n_splits, n_repeats=n_repeats,
        random_state=seed,
    )  # fmt: skip
    model = selection.model
    params = {**model.get_params(deep=False)}
    metrics = cross_validated_metrics(
        params, dataset, n_splits=n_splits, n_repeats=n_repeats, seed=seed
    )
    metrics["selection"] = {
        s.name: {"auc_mean": s.auc_mean, "auc_std": s.auc_std, "brier_mean": s.brier_mean}
        for s in selection.scores
    }
    version = None
    if registry_dir is not None:
        population = training_population(dataset)
        training = {
            "dataset": dataset.spec.name, "source": dataset.source,
            "data_sha256": dataset.sha256, "rows": len(dataset.X),
            "prevalence": float(dataset.y.mean()), "model": selection.best.name,
            "seed": seed, "notes": list(dataset.notes), "python": platform.python_version(),
            "scikit_learn": sklearn.__version__,
        }  # fmt: skip
        version = register_risk_model(
            registry_dir, name=name, model=model, task=dataset.spec,
            reference=reference_sample(pd.DataFrame(dataset.X), dataset.spec),
            metrics=metrics, training=training, thresholds=thresholds,
            intended_use=(
                f"Decision support: estimate the probability of {dataset.spec.positive_label} "
                f"for patients like those of {population.site} ({population.describe()}), "
                "with the factors that raised or lowered it, for review by a clinician. Not a "
                "diagnosis; an assessment outside that population is flagged."
            ),
            limitations=LIMITATIONS, population=population,
        )  # fmt: skip
    return RiskTrainingOutcome(selection, metrics, version)
