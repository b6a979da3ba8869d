"""External validation of a risk model on a second site's data, and recalibration to that site.

The report gives discrimination (AUC), overall accuracy of the probabilities (Brier, ECE)
and the two calibration summaries of Van Calster et al. (2019): calibration-in-the-large
(intercept ``a`` of ``logit P(y) = a + logit(p)``; 0 is ideal, > 0 means the model
under-predicts) and the calibration slope (``b`` of ``logit P(y) = a + b logit(p)``;
1 is ideal, < 1 means predictions are too extreme), each with a bootstrap 95 % interval.
The recalibration, fitted on a labelled sample of the site, is chosen by the closed testing
procedure of `clinsight.evaluation.recalibration` (keep, intercept, or intercept and slope);
before and after are scored on the site's remaining rows only. A model whose calibration
slope at the site is <= 0 does not rank the site's patients: it is not recalibrated and the
report's ``warnings`` say not to use it there, beside the caller's data warnings (e.g. a
feature that is 0 in every row of the site's file).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from sklearn.model_selection import train_test_split

from clinsight.data.medmnist import TaskType
from clinsight.errors import DataError
from clinsight.evaluation.calibration import brier_score, expected_calibration_error
from clinsight.evaluation.metrics import (
    bootstrap_weights,
    json_float,
    percentile_interval,
    roc_auc,
)
from clinsight.evaluation.recalibration import (
    MIN_EVENTS_SLOPE,
    RecalibratedModel,
    RecalibrationChoice,
    check_outcomes,
    fit_logistic_calibration,
    fit_offset_logistic,
    logit,
)

__all__ = [
    "INTERVAL_METRICS",
    "ExternalValidation",
    "ValidationReport",
    "external_validation",
    "validation_report",
]

INTERVAL_METRICS = (
    "auc", "brier", "ece", "calibration_in_the_large", "calibration_intercept",
    "calibration_slope",
)  # fmt: skip


@dataclass(frozen=True)
class ValidationReport:
    """Discrimination and calibration of risks against observed outcomes."""

    n: int
    prevalence: float
    mean_risk: float
    auc: float | None
    brier: float
    ece: float
    calibration_in_the_large: float
    calibration_intercept: float
    calibration_slope: float
    intervals: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    bootstrap_replicates: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (intervals as ``[low, high]``)."""
        out = asdict(self)
        out["intervals"] = {k: list(v) for k, v in self.intervals.items()}
        return out

    def shown(self, metric: str, digits: int = 3) -> str:
        """``0.812 (0.750 to 0.870)``: the value and its interval, ``n/a`` when undefined."""
        value = getattr(self, metric)
        if value is None:
            return "n/a"
        lo, hi = self.intervals.get(metric, (None, None))
        bounds = "" if lo is None or hi is None else f" ({lo:.{digits}f} to {hi:.{digits}f})"
        return f"{value:.{digits}f}{bounds}"


def _point(y: NDArray[np.float64], p: NDArray[np.float64]) -> dict[str, float]:
    z = logit(p)
    (citl,), _ = fit_offset_logistic(np.ones((len(z), 1)), z, y)
    intercept, slope = fit_logistic_calibration(y, p)
    labels = y.astype(np.int64)
    probs = np.column_stack([1 - p, p])
    return {
        "auc": roc_auc(labels, p),
        "brier": brier_score(labels, probs, TaskType.BINARY),
        "ece": expected_calibration_error(labels, probs, TaskType.BINARY),
        "calibration_in_the_large": float(citl),
        "calibration_intercept": intercept,
        "calibration_slope": slope,
    }


def _intervals(
    y: NDArray[np.float64], p: NDArray[np.float64], replicates: int, seed: int
) -> dict[str, tuple[float | None, float | None]]:
    """Percentile intervals of `INTERVAL_METRICS` over case resamples (those with one
    outcome only are left out)."""
    samples: dict[str, list[float]] = {name: [] for name in INTERVAL_METRICS}
    rows = np.arange(len(y))
    for chunk in bootstrap_weights(len(y), replicates, seed):
        for weights in chunk:
            drawn = np.repeat(rows, weights.astype(np.int64))
            if np.unique(y[drawn]).size < 2:
                continue
            values = _point(y[drawn], p[drawn])
            for name in INTERVAL_METRICS:
                samples[name].append(values[name])
    out: dict[str, tuple[float | None, float | None]] = {}
    for name, drawn_values in samples.items():
        lo, hi = percentile_interval(drawn_values)
        out[name] = (json_float(lo), json_float(hi))
    return out


def validation_report(
    y_true: ArrayLike, risk: ArrayLike, *, n_bootstrap: int = 0, seed: int = 0
) -> ValidationReport:
    """AUC, Brier, ECE (the project's 15-bin top-class ECE), calibration-in-the-large and
    slope; with ``n_bootstrap`` > 0, 95 % bootstrap percentile intervals of `INTERVAL_METRICS`.

    Raises:
        DataError: the inputs are not 0/1 labels with both outcomes and probabilities, or
            ``n_bootstrap`` is negative.
    """
    if n_bootstrap < 0:
        raise DataError(f"n_bootstrap must be >= 0; got {n_bootstrap}.")
    y, p = check_outcomes(y_true, risk)
    values = _point(y, p)
    return ValidationReport(
        n=len(y),
        prevalence=float(y.mean()),
        mean_risk=float(p.mean()),
        auc=json_float(values["auc"]),
        brier=values["brier"],
        ece=values["ece"],
        calibration_in_the_large=values["calibration_in_the_large"],
        calibration_intercept=values["calibration_intercept"],
        calibration_slope=values["calibration_slope"],
        intervals=_intervals(y, p, n_bootstrap, seed) if n_bootstrap else {},
        bootstrap_replicates=n_bootstrap,
    )


@dataclass(frozen=True)
class ExternalValidation:
    """A model on another site: as shipped, and recalibrated on a labelled sample.

    ``recalibration`` is the closed-testing choice (method, tests, reason); ``intercept``
    and ``slope`` are the map applied (``0`` and ``1`` when the model is kept);
    ``data_warnings`` come from the caller (the site file's plausibility report).
    """

    site: str
    before: ValidationReport
    before_on_rest: ValidationReport | None
    after_on_rest: ValidationReport | None
    recalibration_rows: int
    intercept: float | None
    slope: float | None
    recalibration: RecalibrationChoice | None = None
    data_warnings: tuple[str, ...] = ()

    @property
    def does_not_rank(self) -> bool:
        """The calibration slope at the site is <= 0 on enough events to tell
        (`MIN_EVENTS_SLOPE`): on all rows, or on the recalibration sample."""
        chosen = self.recalibration is not None and self.recalibration.does_not_rank
        share = min(self.before.prevalence, 1 - self.before.prevalence)
        enough = round(share * self.before.n) >= MIN_EVENTS_SLOPE
        return chosen or (enough and self.before.calibration_slope <= 0)

    @property
    def warnings(self) -> tuple[str, ...]:
        """The data warnings, then the verdict when the model does not rank at this site."""
        if not self.does_not_rank:
            return self.data_warnings
        verdict = (
            f"The model does not rank patients at {self.site} (calibration slope "
            f"{self.before.calibration_slope:.2f} on all {self.before.n} rows): not "
            "recalibrated, do not use it here; check the outcome coding and the predictor "
            "definitions."
        )
        return (*self.data_warnings, verdict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "site": self.site,
            "warnings": list(self.warnings),
            "does_not_rank": self.does_not_rank,
            "before": self.before.to_dict(),
            "before_on_rest": self.before_on_rest.to_dict() if self.before_on_rest else None,
            "after_on_rest": self.after_on_rest.to_dict() if self.after_on_rest else None,
            "recalibration_rows": self.recalibration_rows,
            "intercept": self.intercept,
            "slope": self.slope,
            "recalibration": self.recalibration.to_dict() if self.recalibration else None,
        }


def external_validation(
    model: Any,
    X: pd.DataFrame,
    y: ArrayLike,
    *,
    site: str = "external",
    recalibration_fraction: float = 0.2,
    random_state: int = 0,
    n_bootstrap: int = 0,
    data_warnings: tuple[str, ...] = (),
) -> ExternalValidation:
    """Validate a fitted model on a site's rows, then recalibrate on a stratified sample.

    ``before`` covers all rows. With ``recalibration_fraction > 0`` a stratified sample of
    that share chooses and fits the recalibration (`RecalibratedModel`), and both the
    original and the recalibrated model are scored on the remaining rows only, with the same
    ``n_bootstrap`` resamples (seeded by ``random_state``) for their intervals.

    Raises:
        DataError: the labels are not 0/1 with both outcomes, the fraction is not in [0, 1),
            or ``n_bootstrap`` is negative.
    """
    if not 0.0 <= recalibration_fraction < 1.0:
        raise DataError(f"recalibration_fraction must be in [0, 1); got {recalibration_fraction}.")
    target = np.asarray(y)
    scoring = {"n_bootstrap": n_bootstrap, "seed": random_state}
    before = validation_report(target, model.predict_proba(X)[:, 1], **scoring)
    if recalibration_fraction == 0.0:
        return ExternalValidation(
            site, before, None, None, 0, None, None, data_warnings=data_warnings
        )
    X_cal, X_rest, y_cal, y_rest = train_test_split(
        X, target, train_size=recalibration_fraction, stratify=target, random_state=random_state
    )
    recalibrated = RecalibratedModel(model).fit(X_cal, y_cal)
    return ExternalValidation(
        site=site,
        before=before,
        before_on_rest=validation_report(y_rest, model.predict_proba(X_rest)[:, 1], **scoring),
        after_on_rest=validation_report(
            y_rest, recalibrated.predict_proba(X_rest)[:, 1], **scoring
        ),
        recalibration_rows=len(y_cal),
        intercept=recalibrated.intercept_,
        slope=recalibrated.slope_,
        recalibration=recalibrated.choice_,
        data_warnings=data_warnings,
    )
