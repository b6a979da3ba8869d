"""Repeated cross-validation of survival models, every model on the same folds.

Per test fold: Harrell's and Uno's C (Uno truncated at the 80th percentile of the training
fold's times), cumulative/dynamic AUC at each horizon the fold's follow-up allows, and
the integrated Brier score on a grid of 50 times between the 10th and 80th percentiles of
the training times (clipped to the test fold's range). Per repeat, on the pooled
out-of-fold predictions: calibration at each horizon. Kaplan-Meier and Nelson-Aalen
(fitted on the training fold, the same curve for every patient) are the references.
Summaries give the mean over folds, the 2.5-97.5 percentile of the fold values, and the
mean of each repeat; the first repeat's pooled predictions give 95 % bootstrap
intervals of both concordances.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from clinsight.data.survival import DAYS_PER_YEAR, outcome_fields
from clinsight.evaluation.metrics import json_float
from clinsight.evaluation.subgroups import age_band_labels, age_bands
from clinsight.evaluation.survival import (
    bootstrap_interval,
    harrell_c,
    horizon_calibration,
    integrated_brier,
    kaplan_meier,
    nelson_aalen,
    time_auc,
    uno_c,
)
from clinsight.tabular.survival import SurvivalModel, step_values

__all__ = [
    "HORIZON_YEARS", "REFERENCES", "cross_validate_survival", "model_predictor", "summarise",
]  # fmt: skip

HORIZON_YEARS = (1, 3, 5)
Predictor = Callable[[pd.DataFrame, NDArray[Any], pd.DataFrame], tuple[Any, Any]]


def _reference(kind: str) -> Predictor:
    def predict(
        fit_rows: pd.DataFrame, y_fit: NDArray[Any], held_rows: pd.DataFrame
    ) -> tuple[Any, Any]:
        event_field, time_field = outcome_fields(y_fit)
        event, time = y_fit[event_field], y_fit[time_field]
        if kind == "kaplan_meier":
            grid, surv = kaplan_meier(time, event)
        else:
            grid, hazard = nelson_aalen(time, event)
            surv = np.exp(-hazard)

        def survival(times: Sequence[float]) -> NDArray[np.float64]:
            row = step_values(grid, surv[None, :], times)
            return np.repeat(row, len(held_rows), axis=0)

        return np.zeros(len(held_rows)), survival

    return predict


REFERENCES: dict[str, Predictor] = {
    "kaplan_meier": _reference("kaplan_meier"),
    "nelson_aalen": _reference("nelson_aalen"),
}
"""Population curves that ignore the features: what a model must beat on Brier score."""


def model_predictor(params: Mapping[str, Any]) -> Predictor:
    """A `Predictor` that fits ``SurvivalModel(**params)`` on the training fold."""

    def predict(
        fit_rows: pd.DataFrame, y_fit: NDArray[Any], held_rows: pd.DataFrame
    ) -> tuple[Any, Any]:
        model = SurvivalModel(**params).fit(fit_rows, y_fit)
        return model.predict(held_rows), lambda times: model.predict_survival(held_rows, times)

    return predict


def cross_validate_survival(
    predictor: Predictor,
    features: pd.DataFrame,
    y: NDArray[Any],
    folds: Sequence[tuple[NDArray[np.intp], NDArray[np.intp]]],
    n_repeats: int,
    *,
    horizons_years: Sequence[float] = HORIZON_YEARS,
    seed: int = 0,
    bootstrap: int = 200,
    age: NDArray[np.float64] | None = None,
) -> dict[str, Any]:
    """Per-fold metrics and per-repeat calibration of `predictor` on `folds` (see module doc),
    and with `age`, Harrell's C by age band on the first repeat's pooled risks."""
    event_name, time_name = outcome_fields(y)
    horizons = [h * DAYS_PER_YEAR for h in horizons_years]
    per_fold: list[dict[str, float | None]] = []
    n_splits = len(folds) // n_repeats
    pooled = np.full((n_repeats, len(y), len(horizons)), np.nan)
    pooled_risk = np.zeros((n_repeats, len(y)))
    for index, (fit, held) in enumerate(folds):
        train, test = y[fit], y[held]
        risk, survival = predictor(features.iloc[fit], train, features.iloc[held])
        times = np.asarray(train[time_name])
        tau = float(np.quantile(times, 0.8))
        low, high = np.quantile(times, [0.1, 0.8])
        test_times = np.asarray(test[time_name])
        grid = np.linspace(max(low, test_times.min()), min(high, test_times.max() - 1), 50)
        at_horizons = survival(horizons)
        row: dict[str, float | None] = {
            "harrell_c": _safe(harrell_c, test[time_name], test[event_name], risk),
            "uno_c": _safe(uno_c, train, test, risk, tau),
            "integrated_brier": integrated_brier(train, test, survival(grid), grid),
        }
        for column, (years, horizon) in enumerate(zip(horizons_years, horizons, strict=True)):
            allowed = horizon < test_times.max() and horizon < times.max()
            auc = _safe(_auc_at, train, test, 1.0 - at_horizons[:, column], horizon)
            row[f"auc_{years:g}y"] = auc if allowed else None
        per_fold.append(row)
        pooled[index // n_splits, held] = at_horizons
        pooled_risk[index // n_splits, held] = risk
    return {
        "folds": per_fold,
        "calibration": _calibration(y, pooled, horizons_years, horizons),
        "intervals": _bootstrap(y, pooled_risk[0], seed, bootstrap),
        "subgroups": {} if age is None else _age_bands(y, pooled_risk[0], age),
    }


def _age_bands(y: NDArray[Any], risk: NDArray[np.float64], age: NDArray[Any]) -> dict[str, Any]:
    event_field, time_field = outcome_fields(y)
    event, time = y[event_field], y[time_field]
    bands = np.asarray(age_bands(age))
    out: dict[str, Any] = {}
    for band in age_band_labels():
        rows = bands == band
        if rows.sum() >= 10:
            out[f"age {band}"] = {
                "n": int(rows.sum()), "events": int(event[rows].sum()),
                "harrell_c": _safe(harrell_c, time[rows], event[rows], risk[rows]),
            }  # fmt: skip
    return out


def _safe(compute: Callable[..., float], *args: Any) -> float | None:
    """`compute(*args)` as JSON allows it; None where the metric is undefined (ValueError)."""
    try:
        return json_float(float(compute(*args)))
    except ValueError:
        return None


def _auc_at(train: NDArray[Any], test: NDArray[Any], risk: NDArray[Any], horizon: float) -> float:
    return time_auc(train, test, risk[:, None], [horizon])[0]


def _calibration(
    y: NDArray[Any], pooled: NDArray[np.float64], years: Sequence[float], horizons: list[float]
) -> dict[str, Any]:
    event_field, time_field = outcome_fields(y)
    event, time = y[event_field], y[time_field]
    out: dict[str, Any] = {}
    for column, (label, horizon) in enumerate(zip(years, horizons, strict=True)):
        if horizon >= time.max():
            continue
        fits = [horizon_calibration(time, event, 1.0 - repeat[:, column], horizon)
                for repeat in pooled]  # fmt: skip
        slopes = [f.slope for f in fits]
        out[f"{label:g}y"] = {
            "slope": json_float(float(np.mean(slopes))),
            "slope_repeats": [json_float(s) for s in slopes],
            "intercept": json_float(float(np.mean([f.intercept for f in fits]))),
            "groups": fits[0].to_dict(),
        }
    return out


def _bootstrap(y: NDArray[Any], risk: NDArray[np.float64], seed: int, n: int) -> dict[str, Any]:
    event_field, time_field = outcome_fields(y)
    event, time = y[event_field], y[time_field]
    if n <= 0 or not np.any(risk != risk[0]):
        return {}
    tau = float(np.quantile(time, 0.8))

    def harrell(rows: NDArray[np.intp]) -> float:
        return harrell_c(time[rows], event[rows], risk[rows])

    def uno(rows: NDArray[np.intp]) -> float:
        return uno_c(y, y[rows], risk[rows], tau)

    return {
        "method": f"{n} bootstrap resamples of the first repeat's pooled out-of-fold risks",
        "harrell_c": list(bootstrap_interval(harrell, len(y), n, seed)),
        "uno_c": list(bootstrap_interval(uno, len(y), n, seed)),
    }


def summarise(result: Mapping[str, Any], n_repeats: int) -> dict[str, Any]:
    """Mean, fold interval (2.5-97.5 percentile) and per-repeat means of each fold metric,
    with the calibration slopes and bootstrap intervals of `cross_validate_survival`."""
    folds = result["folds"]
    out: dict[str, Any] = {}
    for name in folds[0]:
        values = np.array([np.nan if f[name] is None else f[name] for f in folds], dtype=float)
        if np.all(np.isnan(values)):
            continue
        per_repeat = values.reshape(n_repeats, -1)
        low, high = np.nanpercentile(values, [2.5, 97.5])
        out[name] = {
            "mean": json_float(float(np.nanmean(values))),
            "fold_interval": [json_float(float(low)), json_float(float(high))],
            "repeats": [json_float(float(np.nanmean(r))) for r in per_repeat],
        }
    out["calibration_slope"] = {
        k: {"mean": v["slope"], "repeats": v["slope_repeats"], "intercept": v["intercept"]}
        for k, v in result["calibration"].items()
    }
    if result.get("intervals"):
        out["bootstrap_95"] = result["intervals"]
    if result.get("subgroups"):
        out["subgroups"] = result["subgroups"]
    return out
