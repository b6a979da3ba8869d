"""External validation of a risk model on a second site's data, and recalibration to that site.

The report gives discrimination (AUC), overall accuracy of the probabilities (Brier, ECE)
and the two calibration summaries of Van Calster et al. (2019): calibration-in-the-large
(intercept ``a`` of ``logit P(y) = a + logit(p)``; 0 is ideal, > 0 means the model
under-predicts) and the calibration slope (``b`` of ``logit P(y) = a + b logit(p)``;
1 is ideal, < 1 means predictions are too extreme). Recalibration refits exactly that
intercept and slope on a labelled sample from the new site (logistic recalibration).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import check_is_fitted

from clinsight.data.medmnist import TaskType
from clinsight.errors import DataError
from clinsight.evaluation.calibration import brier_score, expected_calibration_error
from clinsight.evaluation.metrics import json_float, roc_auc

__all__ = [
    "ExternalValidation",
    "RecalibratedModel",
    "ValidationReport",
    "external_validation",
    "fit_logistic_calibration",
    "validation_report",
]

_EPS = 1e-6


def _logit(p: ArrayLike) -> NDArray[np.float64]:
    q = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.asarray(np.log(q / (1 - q)), dtype=np.float64)


def _newton(
    design: NDArray[np.float64],
    offset: NDArray[np.float64],
    y: NDArray[np.float64],
    prior: NDArray[np.float64] | None = None,
    shrinkage: float = 0.0,
) -> NDArray[np.float64]:
    """Logistic coefficients with a fixed offset, maximising the likelihood less
    ``shrinkage / 2 * |beta - prior|^2`` (a Gaussian prior; 0 gives plain ML)."""
    centre = np.zeros(design.shape[1]) if prior is None else prior
    beta = centre.copy()
    penalty = max(shrinkage, 1e-8) * np.eye(design.shape[1])
    for _ in range(100):
        mu = 1.0 / (1.0 + np.exp(-(design @ beta + offset)))
        gradient = design.T @ (y - mu) - penalty @ (beta - centre)
        hessian = (design * (mu * (1 - mu))[:, None]).T @ design + penalty
        step = np.linalg.solve(hessian, gradient)
        beta = beta + step
        if np.max(np.abs(step)) < 1e-10:
            break
    return beta


def _checked(y_true: ArrayLike, risk: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(risk, dtype=np.float64)
    if y.ndim != 1 or y.shape != p.shape or len(y) == 0:
        raise DataError(f"y and risk must be equally long 1-D arrays; got {y.shape}, {p.shape}.")
    if not np.isin(y, (0.0, 1.0)).all() or np.unique(y).size < 2:
        raise DataError("y must hold 0 and 1, with both outcomes present.")
    if not np.all((p >= 0) & (p <= 1)):
        raise DataError("risk must be probabilities in [0, 1].")
    return y, p


def fit_logistic_calibration(
    y_true: ArrayLike, risk: ArrayLike, shrinkage: float = 0.0
) -> tuple[float, float]:
    """``(a, b)`` of ``logit P(y=1) = a + b * logit(risk)``.

    Plain maximum likelihood by default; ``shrinkage`` > 0 pulls ``(a, b)`` towards the
    identity map ``(0, 1)`` (a Gaussian prior of precision ``shrinkage``), which keeps a
    recalibration fitted on a few dozen rows from overshooting.

    Raises:
        DataError: the inputs are not 0/1 labels with both outcomes and probabilities, or
            ``shrinkage`` is negative.
    """
    if shrinkage < 0:
        raise DataError(f"shrinkage must be >= 0; got {shrinkage}.")
    y, p = _checked(y_true, risk)
    z = _logit(p)
    design = np.column_stack([np.ones_like(z), z])
    a, b = _newton(design, np.zeros_like(z), y, np.array([0.0, 1.0]), shrinkage)
    return float(a), float(b)


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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def validation_report(y_true: ArrayLike, risk: ArrayLike) -> ValidationReport:
    """AUC, Brier, ECE (the project's 15-bin top-class ECE), calibration-in-the-large and slope.

    Raises:
        DataError: the inputs are not 0/1 labels with both outcomes and probabilities.
    """
    y, p = _checked(y_true, risk)
    z = _logit(p)
    (citl,) = _newton(np.ones((len(z), 1)), z, y)
    intercept, slope = fit_logistic_calibration(y, p)
    labels = y.astype(np.int64)
    probs = np.column_stack([1 - p, p])
    return ValidationReport(
        n=len(y),
        prevalence=float(y.mean()),
        mean_risk=float(p.mean()),
        auc=json_float(roc_auc(labels, p)),
        brier=brier_score(labels, probs, TaskType.BINARY),
        ece=expected_calibration_error(labels, probs, TaskType.BINARY),
        calibration_in_the_large=float(citl),
        calibration_intercept=intercept,
        calibration_slope=slope,
    )


class RecalibratedModel(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A fitted risk model with its log-odds remapped to a new site: ``a + b * logit(p)``.

    ``fit`` learns ``a`` and ``b`` from the site's labelled sample, shrunk towards the
    identity map by ``shrinkage`` (see `fit_logistic_calibration`); the wrapped model is
    left as it is (it must already be fitted).
    """

    def __init__(self, estimator: Any, shrinkage: float = 1.0) -> None:
        self.estimator = estimator
        self.shrinkage = shrinkage

    def fit(self, X: pd.DataFrame, y: ArrayLike) -> RecalibratedModel:
        """Fit the intercept and slope on the site's labelled sample.

        Raises:
            DataError: y is not 0/1 with both outcomes, or shrinkage is negative.
            sklearn.exceptions.NotFittedError: the wrapped model is not fitted.
        """
        check_is_fitted(self.estimator)
        risk = self.estimator.predict_proba(X)[:, 1]
        self.intercept_, self.slope_ = fit_logistic_calibration(y, risk, self.shrinkage)
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: pd.DataFrame) -> NDArray[np.float64]:
        """Recalibrated probabilities, shape (n, 2).

        Raises:
            sklearn.exceptions.NotFittedError: `fit` has not been called.
        """
        check_is_fitted(self)
        z = _logit(self.estimator.predict_proba(X)[:, 1])
        risk = 1.0 / (1.0 + np.exp(-(self.intercept_ + self.slope_ * z)))
        return np.column_stack([1 - risk, risk])

    def predict(self, X: pd.DataFrame) -> NDArray[np.int64]:
        """1 where the recalibrated risk is at least 0.5."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(np.int64)


@dataclass(frozen=True)
class ExternalValidation:
    """A model on another site: as shipped, and recalibrated on a labelled sample."""

    site: str
    before: ValidationReport
    before_on_rest: ValidationReport | None
    after_on_rest: ValidationReport | None
    recalibration_rows: int
    intercept: float | None
    slope: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "site": self.site,
            "before": self.before.to_dict(),
            "before_on_rest": self.before_on_rest.to_dict() if self.before_on_rest else None,
            "after_on_rest": self.after_on_rest.to_dict() if self.after_on_rest else None,
            "recalibration_rows": self.recalibration_rows,
            "intercept": self.intercept,
            "slope": self.slope,
        }


def external_validation(
    model: Any,
    X: pd.DataFrame,
    y: ArrayLike,
    *,
    site: str = "external",
    recalibration_fraction: float = 0.2,
    random_state: int = 0,
) -> ExternalValidation:
    """Validate a fitted model on a site's rows, then recalibrate on a stratified sample.

    ``before`` covers all rows. With ``recalibration_fraction > 0`` a stratified sample of
    that share is used to fit the recalibration, and both the original and recalibrated
    model are scored on the remaining rows only.

    Raises:
        DataError: the labels are not 0/1 with both outcomes, or the fraction is not in [0, 1).
    """
    if not 0.0 <= recalibration_fraction < 1.0:
        raise DataError(f"recalibration_fraction must be in [0, 1); got {recalibration_fraction}.")
    target = np.asarray(y)
    before = validation_report(target, model.predict_proba(X)[:, 1])
    if recalibration_fraction == 0.0:
        return ExternalValidation(site, before, None, None, 0, None, None)
    X_cal, X_rest, y_cal, y_rest = train_test_split(
        X, target, train_size=recalibration_fraction, stratify=target, random_state=random_state
    )
    recalibrated = RecalibratedModel(model).fit(X_cal, y_cal)
    return ExternalValidation(
        site=site,
        before=before,
        before_on_rest=validation_report(y_rest, model.predict_proba(X_rest)[:, 1]),
        after_on_rest=validation_report(y_rest, recalibrated.predict_proba(X_rest)[:, 1]),
        recalibration_rows=len(y_cal),
        intercept=recalibrated.intercept_,
        slope=recalibrated.slope_,
    )
