"""Use case: choose and evaluate a survival model on a time-to-event data set, and register it
with its card (population, follow-up, censoring, proportional-hazards check).

Selection is `tabular.select_survival_model` (repeated stratified CV on Uno's C). The
card's metrics come from a second repeated CV of the chosen configuration on the same
folds (`evaluation.survival_cv`), beside the Kaplan-Meier reference's integrated Brier
score. The proportional-hazards check is a Schoenfeld test of an unpenalised Cox fit on
the same preprocessing, whatever model wins: it says whether Cox's constant hazard ratios
fit these data.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sklearn

from clinsight.data.survival import DAYS_PER_YEAR, SurvivalDataset
from clinsight.data.tabular import FeatureType
from clinsight.evaluation.metrics import json_float
from clinsight.evaluation.proportional_hazards import schoenfeld_test
from clinsight.evaluation.survival import kaplan_meier, kaplan_meier_band
from clinsight.evaluation.survival_cv import (
    REFERENCES,
    cross_validate_survival,
    model_predictor,
    summarise,
)
from clinsight.registry.survival import SurvivalModelVersion, register_survival_model
from clinsight.tabular.pipeline import output_sources
from clinsight.tabular.survival import (
    DEFAULT_SURVIVAL_CANDIDATES,
    SurvivalModel,
    SurvivalSelection,
    select_survival_model,
    survival_folds,
)

__all__ = [
    "SurvivalTrainingOutcome",
    "longest_horizon",
    "population_summary",
    "proportional_hazards_check",
    "train_survival_model",
]

MIN_AT_RISK = 10
LIMITATIONS = (
    "Evaluated by cross-validation on a single cohort; performance in another population, "
    "era of treatment or at another site is unknown until validated externally.",
    "Risks are given only up to the longest supported horizon (while enough patients "
    "remained under follow-up); a longer horizon is refused.",
    "Inputs outside the range of the training population are refused: the model was not "
    "made for such patients.",
    "Decision support only: the survival curve and its factors must be reviewed by a clinician.",
)


@dataclass(frozen=True)
class SurvivalTrainingOutcome:
    """The selection, the cross-validated metrics and the registered version (if any)."""

    selection: SurvivalSelection
    metrics: dict[str, Any]
    version: SurvivalModelVersion | None


def longest_horizon(time: np.ndarray, minimum_at_risk: int = MIN_AT_RISK) -> float:
    """The latest follow-up time (days) at which at least `minimum_at_risk` patients (and 5 %)
    were still under observation: the longest horizon a risk is given for."""
    needed = max(minimum_at_risk, int(np.ceil(0.05 * len(time))))
    ordered = np.sort(time)[::-1]
    return float(np.floor(ordered[min(needed, len(ordered)) - 1]))


def population_summary(dataset: SurvivalDataset, points: int = 120) -> dict[str, Any]:
    """Who the model was trained on: size, events, censoring, follow-up, feature ranges and
    the Kaplan-Meier curve with its 95 % band (at most `points` steps; no patient rows)."""
    censor_times, censor_surv = kaplan_meier(dataset.time, ~dataset.event)
    below = np.flatnonzero(censor_surv <= 0.5)
    median_follow_up = float(censor_times[below[0]]) if below.size else None
    times, surv, low, high = kaplan_meier_band(dataset.time, dataset.event)
    keep = np.unique(np.linspace(0, len(times) - 1, min(points, len(times))).astype(int))
    ranges: dict[str, Any] = {}
    for feature in dataset.spec.features:
        column = dataset.X[feature.name].dropna()
        if feature.type is FeatureType.CATEGORICAL:
            ranges[feature.name] = sorted(str(v) for v in column.unique())
        elif not column.empty:
            ranges[feature.name] = [float(column.min()), float(column.max())]
    return {
        "dataset": dataset.spec.name, "source": dataset.source, "rows": len(dataset.X),
        "events": int(dataset.event.sum()), "censoring_rate": round(dataset.censoring_rate, 4),
        "median_follow_up_days": median_follow_up,
        "max_follow_up_days": float(dataset.time.max()), "ranges": ranges,
        "kaplan_meier": {"days": times[keep].tolist(), "survival": surv[keep].tolist(),
                         "low": low[keep].tolist(), "high": high[keep].tolist()},
    }  # fmt: skip


def proportional_hazards_check(dataset: SurvivalDataset) -> dict[str, Any]:
    """The Schoenfeld test of an unpenalised Cox model on the pipeline's preprocessing."""
    cox = SurvivalModel("cox", dataset.spec.feature_types, _categories(dataset))
    cox.fit(dataset.X, dataset.y)
    sources = output_sources(cox.pipeline_.named_steps["preprocess"])
    coef = cox.pipeline_.named_steps["model"].coef_
    return schoenfeld_test(cox.design(dataset.X), dataset.time, dataset.event, coef,
                           sources).to_dict()  # fmt: skip


def _categories(dataset: SurvivalDataset) -> dict[str, tuple[str, ...]]:
    return {f.name: f.categories for f in dataset.spec.features if f.categories}


def _reference(dataset: SurvivalDataset) -> dict[str, Any]:
    """Per feature, the population's median (numeric) or most frequent value (categorical)."""
    out: dict[str, Any] = {}
    for feature in dataset.spec.features:
        column = dataset.X[feature.name].dropna()
        if column.empty:
            out[feature.name] = None
        elif feature.type is FeatureType.CATEGORICAL:
            out[feature.name] = str(column.mode().iloc[0])
        else:
            out[feature.name] = float(column.median())
    return out


def train_survival_model(
    dataset: SurvivalDataset,
    *,
    registry_dir: Path | None,
    name: str,
    candidates: Mapping[str, Mapping[str, Any]] | None = None,
    n_splits: int = 5,
    n_repeats: int = 3,
    n_trees: int = 200,
    band_refits: int = 10,
    bootstrap: int = 200,
    seed: int = 0,
) -> SurvivalTrainingOutcome:
    """Select (among the candidates, by default `DEFAULT_SURVIVAL_CANDIDATES`, and their
    rank ensembles), evaluate and (with a `registry_dir`) register a survival model for
    `dataset`.

    Raises:
        DataError: the outcome is invalid.
        ModelError: a candidate names an unknown model.
        RegistryError: the model could not be registered.
    """
    chosen = {k: {"n_trees": n_trees, **v}
              for k, v in (candidates or DEFAULT_SURVIVAL_CANDIDATES).items()}  # fmt: skip
    y, types, categories = dataset.y, dataset.spec.feature_types, _categories(dataset)
    selection = select_survival_model(
        dataset.X, y, types, categories=categories, candidates=chosen, n_splits=n_splits,
        n_repeats=n_repeats, ensembles=True, band_refits=band_refits, random_state=seed,
    )  # fmt: skip
    folds = survival_folds(dataset.event, n_splits, n_repeats, seed)
    params = {"feature_types": types, "categories": categories, "random_state": seed,
              **selection.best.params}  # fmt: skip
    age = dataset.X[dataset.spec.age_column].to_numpy() if dataset.spec.age_column else None
    result = cross_validate_survival(model_predictor(params), dataset.X, y, folds, n_repeats,
                                     seed=seed, bootstrap=bootstrap, age=age)  # fmt: skip
    km = cross_validate_survival(REFERENCES["kaplan_meier"], dataset.X, y, folds, n_repeats,
                                 bootstrap=0)  # fmt: skip
    metrics: dict[str, Any] = {
        "protocol": f"{n_splits}-fold CV stratified on the event, repeated {n_repeats} times "
        f"(seed {seed}); mean over folds, 2.5-97.5 percentile of fold values, mean per repeat",
        "cross_validation": summarise(result, n_repeats),
        "kaplan_meier_integrated_brier": summarise(km, n_repeats)["integrated_brier"],
        "selection": {s.name: {"uno_c_mean": json_float(s.uno_mean),
                               "uno_c_repeats": [json_float(r) for r in s.uno_repeats],
                               "harrell_c_mean": json_float(s.harrell_mean), "failed": s.failed}
                      for s in selection.scores},
    }  # fmt: skip
    metrics["calibration_slope"] = metrics["cross_validation"]["calibration_slope"]
    version = None
    if registry_dir is not None:
        horizon = longest_horizon(dataset.time)
        training = {
            "dataset": dataset.spec.name, "source": dataset.source,
            "data_sha256": dataset.sha256, "rows": len(dataset.X),
            "events": int(dataset.event.sum()), "model": selection.best.name,
            "band_refits": band_refits, "seed": seed, "python": platform.python_version(),
            "scikit_learn": sklearn.__version__, "time_unit": "days",
        }  # fmt: skip
        version = register_survival_model(
            registry_dir, name=name, model=selection.model, task=dataset.spec,
            population=population_summary(dataset), max_horizon_days=horizon,
            reference=_reference(dataset), metrics=metrics, training=training,
            proportional_hazards=proportional_hazards_check(dataset),
            intended_use=(
                f"Decision support: estimate the probability of staying free of "
                f"{dataset.spec.positive_label} over time (risk by 1, 3 and 5 years, up to "
                f"{horizon / DAYS_PER_YEAR:.1f} years) for patients like those of "
                f"{dataset.spec.name}, with the factors that moved it, for review by a "
                "clinician. Not a diagnosis or a treatment decision."
            ),
            limitations=LIMITATIONS,
        )  # fmt: skip
    return SurvivalTrainingOutcome(selection, metrics, version)
