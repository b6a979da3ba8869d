"""Recalibration of a risk model to a new site, chosen by a closed testing procedure.

Four candidate updates of the model's log-odds ``z = logit(p)`` (Vergouwe et al., 2017;
Steyerberg, *Clinical Prediction Models*, ch. 20):

1. ``none``: keep the model as it is, ``logit P(y) = z``;
2. ``intercept``: recalibration-in-the-large, ``logit P(y) = a + z``;
3. ``logistic``: intercept and slope, ``logit P(y) = a + b z``;
4. ``revision``: model revision, ``logit P(y) = a + b z + x' g``, the site's predictors
   ``x`` (standardised on the sample, missing values at its medians) refitted on top of
   the model's log-odds; only when predictors are given and the sample has at least
   `MIN_EVENTS_PER_REVISION_PARAMETER` events for each of its ``k + 2`` coefficients.

Likelihood-ratio tests choose among them, in order. Where revision may be estimated, 4 vs 1
(k + 2 df) comes first: not significant keeps the model; significant, 4 vs 3 (k df) decides
for revision, and failing that the three-step test below goes on. Then 3 vs 1 (2 df) at
``alpha``; if that is not significant the model is kept. Otherwise 3 vs 2 (1 df) decides
for the slope, and failing that 2 vs 1 (1 df) for the intercept. Each step needs a minimum
number of events (the smaller of the positive and negative counts): `MIN_EVENTS_INTERCEPT`
for an intercept, `MIN_EVENTS_SLOPE` for a slope. A fitted slope <= 0 means the model does not
rank the site's patients (or ranks them backwards): then no update at all is made, not
even an intercept (it would make the average risk right while the ranking stays wrong),
and with at least `MIN_EVENTS_SLOPE` events the choice says so (``does_not_rank``: do not
use the model at this site; with fewer the sign is not established, and nothing is done);
nor is a model revised that does not rank. Every accepted recalibration (1-3) is monotone
increasing, so AUC never changes; a revision changes the ranking, and is accepted only on
samples large enough to estimate it (Cleveland's 13 predictors need 150 events).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit, log_expit
from scipy.stats import chi2
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from clinsight.errors import DataError

__all__ = [
    "ALPHA",
    "MIN_EVENTS_INTERCEPT",
    "MIN_EVENTS_PER_REVISION_PARAMETER",
    "MIN_EVENTS_SLOPE",
    "LikelihoodRatioTest",
    "RecalibratedModel",
    "RecalibrationChoice",
    "RecalibrationMethod",
    "Revision",
    "check_outcomes",
    "choose_recalibration",
    "fit_logistic_calibration",
    "fit_offset_logistic",
    "logit",
]

ALPHA = 0.05
MIN_EVENTS_INTERCEPT = 10
MIN_EVENTS_SLOPE = 20
MIN_EVENTS_PER_REVISION_PARAMETER = 10
_EPS = 1e-6
_REVISION_RIDGE = 1e-3


class RecalibrationMethod(StrEnum):
    """The update applied to the model's log-odds."""

    NONE = "none"
    INTERCEPT = "intercept"
    LOGISTIC = "logistic"
    REVISION = "revision"

    @property
    def label(self) -> str:
        """What the method does, in words."""
        return {
            "none": "model kept as it is",
            "intercept": "recalibration-in-the-large (intercept only)",
            "logistic": "logistic recalibration (intercept and slope)",
            "revision": "model revision (intercept, slope and the predictors refitted)",
        }[self.value]


def logit(p: ArrayLike) -> NDArray[np.float64]:
    """Log-odds of probabilities clipped to [1e-6, 1 - 1e-6]."""
    q = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.asarray(np.log(q / (1 - q)), dtype=np.float64)


def check_outcomes(
    y_true: ArrayLike, risk: ArrayLike, *, both: bool = True
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """0/1 outcomes and risks as float arrays; ``both``: each outcome must occur.

    Raises:
        DataError: not equally long 1-D arrays, not 0/1 (or, with ``both``, one outcome
            only), or risks outside [0, 1].
    """
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(risk, dtype=np.float64)
    if y.ndim != 1 or y.shape != p.shape or len(y) == 0:
        raise DataError(f"y and risk must be equally long 1-D arrays; got {y.shape}, {p.shape}.")
    if not np.isin(y, (0.0, 1.0)).all() or (both and np.unique(y).size < 2):
        raise DataError("y must hold 0 and 1, with both outcomes present.")
    if not np.all((p >= 0) & (p <= 1)):
        raise DataError("risk must be probabilities in [0, 1].")
    return y, p


def _log_likelihood(y: NDArray[np.float64], eta: NDArray[np.float64]) -> float:
    return float(np.sum(np.where(y == 1, log_expit(eta), log_expit(-eta))))


def fit_offset_logistic(
    design: NDArray[np.float64],
    offset: NDArray[np.float64],
    y: NDArray[np.float64],
    prior: NDArray[np.float64] | None = None,
    shrinkage: float = 0.0,
) -> tuple[NDArray[np.float64], bool]:
    """Logistic coefficients with a fixed offset by Newton's method, and whether it converged
    (it does not when the sample separates the outcomes). Maximises the log-likelihood less
    ``shrinkage / 2 * |beta - prior|^2`` (a Gaussian prior; 0 gives maximum likelihood)."""
    centre = np.zeros(design.shape[1]) if prior is None else prior
    beta = centre.copy()
    penalty = max(shrinkage, 1e-8) * np.eye(design.shape[1])

    def objective(b: NDArray[np.float64]) -> float:
        shift = b - centre
        return _log_likelihood(y, design @ b + offset) - 0.5 * float(shift @ penalty @ shift)

    current = objective(beta)
    for _ in range(100):
        mu = expit(design @ beta + offset)
        gradient = design.T @ (y - mu) - penalty @ (beta - centre)
        hessian = (design * (mu * (1 - mu))[:, None]).T @ design + penalty
        step = np.linalg.solve(hessian, gradient)
        for _ in range(30):  # step halving: Newton never lowers the objective
            trial = objective(beta + step)
            if trial >= current - 1e-12:
                break
            step = step / 2
        beta, current = beta + step, trial
        if np.max(np.abs(step)) < 1e-10:
            return beta, True
    return beta, False


def fit_logistic_calibration(
    y_true: ArrayLike, risk: ArrayLike, shrinkage: float = 0.0
) -> tuple[float, float]:
    """``(a, b)`` of ``logit P(y=1) = a + b * logit(risk)``.

    Plain maximum likelihood by default; ``shrinkage`` > 0 pulls ``(a, b)`` towards the
    identity map ``(0, 1)`` (a Gaussian prior of precision ``shrinkage``).

    Raises:
        DataError: the inputs are not 0/1 labels with both outcomes and probabilities, or
            ``shrinkage`` is negative.
    """
    if shrinkage < 0:
        raise DataError(f"shrinkage must be >= 0; got {shrinkage}.")
    y, p = check_outcomes(y_true, risk)
    z = logit(p)
    design = np.column_stack([np.ones_like(z), z])
    (a, b), _ = fit_offset_logistic(design, np.zeros_like(z), y, np.array([0.0, 1.0]), shrinkage)
    return float(a), float(b)


@dataclass(frozen=True)
class LikelihoodRatioTest:
    """``2 (LL_larger - LL_smaller)`` against chi-squared with ``df`` degrees of freedom."""

    comparison: str
    statistic: float
    df: int
    p_value: float

    @property
    def text(self) -> str:
        """E.g. ``logistic vs none: LR 7.31 (2 df), p = 0.026``."""
        return f"{self.comparison}: LR {self.statistic:.2f} ({self.df} df), p = {self.p_value:.3g}"


def _lr(comparison: str, larger: float, smaller: float, df: int) -> LikelihoodRatioTest:
    statistic = max(0.0, 2.0 * (larger - smaller))
    return LikelihoodRatioTest(comparison, statistic, df, float(chi2.sf(statistic, df)))


@dataclass(frozen=True)
class Revision:
    """The predictors' part of a model revision: each numeric column's fill value (the
    sample's median), centre and scale, and its refitted coefficient ``g``."""

    columns: tuple[str, ...]
    fill: tuple[float, ...]
    centre: tuple[float, ...]
    scale: tuple[float, ...]
    coefficients: tuple[float, ...] = ()

    @classmethod
    def of(cls, frame: pd.DataFrame) -> Revision:
        """The standardisation of `frame`'s numeric columns that vary (no coefficients yet)."""
        numeric = frame.select_dtypes("number").astype(np.float64)
        fill = numeric.median().fillna(0.0)
        filled = numeric.fillna(fill)
        sd = filled.std(ddof=0)
        keep = [c for c in numeric.columns if sd[c] > 1e-12]
        return cls(tuple(map(str, keep)), tuple(fill[keep]), tuple(filled[keep].mean()),
                   tuple(sd[keep]))  # fmt: skip

    def design(self, frame: pd.DataFrame) -> NDArray[np.float64]:
        """The standardised predictors of `frame`, shape (n, k).

        Raises:
            DataError: a predictor column is missing.
        """
        if missing := [c for c in self.columns if c not in frame.columns]:
            raise DataError(f"model revision needs the columns {', '.join(missing)}.")
        values = (
            frame[list(self.columns)]
            .astype(np.float64)
            .fillna(dict(zip(self.columns, self.fill, strict=True)))
        )
        return np.asarray((values.to_numpy() - np.array(self.centre)) / np.array(self.scale))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"columns": list(self.columns), "fill": list(self.fill), "centre": list(self.centre),
                "scale": list(self.scale), "coefficients": list(self.coefficients)}  # fmt: skip


@dataclass(frozen=True)
class RecalibrationChoice:
    """The chosen update ``a + b * logit(p)`` (``(0, 1)`` for none), the tests and why."""

    method: RecalibrationMethod
    intercept: float
    slope: float
    n: int
    events: int
    reason: str
    tests: list[LikelihoodRatioTest] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    alpha: float = ALPHA
    min_events: dict[str, int] = field(default_factory=dict)
    does_not_rank: bool = False
    revision: Revision | None = None

    def apply(self, risk: ArrayLike, features: pd.DataFrame | None = None) -> NDArray[np.float64]:
        """Recalibrated risks (the risks unchanged for ``none``); a revision also needs the
        rows' predictors.

        Raises:
            DataError: a revision without `features`, or a predictor column is missing.
        """
        if self.method == RecalibrationMethod.NONE:
            return np.asarray(risk, dtype=np.float64)
        eta = self.intercept + self.slope * logit(risk)
        if self.method == RecalibrationMethod.REVISION:
            if self.revision is None or features is None:
                raise DataError("a revised model needs the rows' predictors.")
            eta = eta + self.revision.design(features) @ np.array(self.revision.coefficients)
        return np.asarray(expit(eta), dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "method": str(self.method),
            "intercept": self.intercept,
            "slope": self.slope,
            "n": self.n,
            "events": self.events,
            "reason": self.reason,
            "tests": [
                {
                    "comparison": t.comparison,
                    "statistic": t.statistic,
                    "df": t.df,
                    "p_value": t.p_value,
                }
                for t in self.tests
            ],
            "refused": list(self.refused),
            "alpha": self.alpha,
            "min_events": dict(self.min_events),
            "does_not_rank": self.does_not_rank,
            "revision": self.revision.to_dict() if self.revision else None,
        }


def choose_recalibration(
    y_true: ArrayLike,
    risk: ArrayLike,
    *,
    alpha: float = ALPHA,
    min_events_intercept: int = MIN_EVENTS_INTERCEPT,
    min_events_slope: int = MIN_EVENTS_SLOPE,
    features: pd.DataFrame | None = None,
    min_events_per_parameter: int = MIN_EVENTS_PER_REVISION_PARAMETER,
) -> RecalibrationChoice:
    """Choose none, intercept, logistic recalibration or (with the sample's predictors in
    `features`) model revision by the closed testing procedure (a sample with one outcome
    only has 0 events and keeps the model).

    Raises:
        DataError: the inputs are not 0/1 outcomes and probabilities, or
            ``alpha`` is not in (0, 1), or the event minima are below 1.
    """
    if not 0.0 < alpha < 1.0 or min(min_events_intercept, min_events_slope) < 1:
        raise DataError(
            f"Need 0 < alpha < 1 and event minima >= 1; got alpha={alpha}, "
            f"min_events_intercept={min_events_intercept}, min_events_slope={min_events_slope}."
        )
    y, p = check_outcomes(y_true, risk, both=False)
    events = int(min(y.sum(), len(y) - y.sum()))
    minima = {"intercept": min_events_intercept, "logistic": min_events_slope}
    predictors: tuple[Revision, NDArray[np.float64]] | None = None
    if features is not None:
        if len(features) != len(y):
            raise DataError("features must have one row per outcome.")
        revision = Revision.of(features)
        predictors = (revision, revision.design(features))
        minima["revision"] = min_events_per_parameter * (len(revision.columns) + 2)

    refused: list[str] = []

    def choice(
        method: RecalibrationMethod,
        reason: str,
        tests: list[LikelihoodRatioTest],
        a: float = 0.0,
        b: float = 1.0,
        does_not_rank: bool = False,
        revised: Revision | None = None,
    ) -> RecalibrationChoice:
        if refused:
            reason += " Refused: " + "; ".join(refused) + "."
        return RecalibrationChoice(
            method, a, b, len(y), events, reason, tests, list(refused), alpha, minima,
            does_not_rank, revised,
        )  # fmt: skip

    if events < min_events_intercept:
        return choice(
            RecalibrationMethod.NONE,
            f"Model kept as it is: {events} events (the smaller of the outcome-positive and "
            f"outcome-negative counts) are fewer than the {min_events_intercept} needed to "
            "estimate even an intercept; collect more labelled rows before recalibrating.",
            [],
        )
    z = logit(p)
    ones = np.ones((len(z), 1))
    (a2,), ok2 = fit_offset_logistic(ones, z, y)
    (a3, b3), ok3 = fit_offset_logistic(np.column_stack([ones, z]), np.zeros_like(z), y)
    ll1, ll2, ll3 = (_log_likelihood(y, eta) for eta in (z, a2 + z, a3 + b3 * z))
    if events < min_events_slope:
        refused.append(f"slope, {events} events < {min_events_slope} needed for a slope")
    if np.ptp(z) < 1e-9:
        refused.append("slope, every risk of the sample is the same")
    elif b3 <= 0:
        refused.append(
            f"slope, the fitted slope {b3:.2f} is <= 0 and would reverse the model's ranking "
            "(the model ranks this site's patients the wrong way round: check the outcome "
            "coding and the predictor definitions before any use)"
        )
        refused.append("intercept, an intercept cannot mend a ranking")
        if events < min_events_slope:
            return choice(
                RecalibrationMethod.NONE,
                f"Not recalibrated: the calibration slope is {b3:.2f} (<= 0) on {events} "
                f"events, too few to tell whether the model ranks this site's patients; "
                f"collect at least {min_events_slope} events before recalibrating.",
                [],
            )
        return choice(
            RecalibrationMethod.NONE,
            f"The model does not rank patients at this site (calibration slope {b3:.2f} <= 0 "
            f"on {len(y)} rows, {events} events): not recalibrated, do not use it here.",
            [],
            does_not_rank=True,
        )
    if not ok3 and not refused:
        refused.append("slope, the fit does not converge (the sample separates the outcomes)")
    slope_ok = not refused
    if predictors is not None and slope_ok:
        revised = _revise(y, z, *predictors, events, min_events_per_parameter, refused)
        if revised is not None:
            found, ll4 = revised
            k = len(found.columns)
            first = _lr("revision vs none", ll4, ll1, k + 2)
            if first.p_value >= alpha:
                return choice(
                    RecalibrationMethod.NONE,
                    f"Model kept as it is: neither its calibration nor its predictors' effects "
                    f"differ significantly at this site ({first.text}; alpha {alpha}).",
                    [first],
                )
            against = _lr("revision vs logistic", ll4, ll3, k)
            if against.p_value < alpha:
                a4, b4 = found.coefficients[:2]
                kept = replace(found, coefficients=found.coefficients[2:])
                return choice(
                    RecalibrationMethod.REVISION,
                    f"Model revision (intercept {a4:+.2f}, slope {b4:.2f}, {k} predictors "
                    f"refitted): the predictors' effects differ at this site beyond what a "
                    f"recalibration mends ({against.text}). The ranking changes: validate the "
                    "revised model on other rows of the site before use.",
                    [first, against], a4, b4, revised=kept,
                )  # fmt: skip
            refused.append(f"revision, not needed beyond the recalibration ({against.text})")
    if not ok2:
        refused.append("intercept, the fit does not converge")
    if slope_ok:
        overall = _lr("logistic vs none", ll3, ll1, 2)
    else:
        overall = _lr("intercept vs none", ll2, ll1, 1)
    if overall.p_value >= alpha or not ok2:
        what = "its calibration on this sample" if slope_ok else "its calibration-in-the-large"
        return choice(
            RecalibrationMethod.NONE,
            f"Model kept as it is: {what} is not significantly off ({overall.text}; "
            f"alpha {alpha}).",
            [overall],
        )
    if not slope_ok:
        return choice(
            RecalibrationMethod.INTERCEPT,
            f"Recalibration-in-the-large (intercept {a2:+.2f} on the log-odds): the average "
            f"risk is off ({overall.text}).",
            [overall],
            float(a2),
        )
    in_large = _lr("intercept vs none", ll2, ll1, 1)
    slope_test = _lr("logistic vs intercept", ll3, ll2, 1)
    tests = [overall, in_large, slope_test]
    if slope_test.p_value < alpha:
        return choice(
            RecalibrationMethod.LOGISTIC,
            f"Logistic recalibration (intercept {a3:+.2f}, slope {b3:.2f}): the calibration "
            f"is off ({overall.text}) and the slope differs from 1 ({slope_test.text}).",
            tests,
            float(a3),
            float(b3),
        )
    if in_large.p_value < alpha:
        return choice(
            RecalibrationMethod.INTERCEPT,
            f"Recalibration-in-the-large (intercept {a2:+.2f} on the log-odds): the average "
            f"risk is off ({in_large.text}); the slope is not needed ({slope_test.text}).",
            tests,
            float(a2),
        )
    return choice(
        RecalibrationMethod.NONE,
        f"Model kept as it is: the calibration is off overall ({overall.text}) but neither "
        f"the intercept alone ({in_large.text}) nor the slope ({slope_test.text}) is.",
        tests,
    )


def _revise(
    y: NDArray[np.float64],
    z: NDArray[np.float64],
    revision: Revision,
    x: NDArray[np.float64],
    events: int,
    per_parameter: int,
    refused: list[str],
) -> tuple[Revision, float] | None:
    """The revision on the standardised predictors `x`, fitted by maximum likelihood, and
    its log-likelihood; None (the reason added to `refused`) when the sample has fewer than
    `per_parameter` events per coefficient, no varying predictor, or the fit does not
    converge."""
    if not revision.columns:
        refused.append("revision, no predictor varies in the sample")
        return None
    needed = per_parameter * (len(revision.columns) + 2)
    if events < needed:
        refused.append(
            f"revision, {events} events < {needed} needed to refit {len(revision.columns)} "
            f"predictors ({per_parameter} per coefficient)"
        )
        return None
    design = np.column_stack([np.ones_like(z), z, x])
    # a faint ridge: z is often (for a logistic model, exactly) a mix of the predictors
    beta, ok = fit_offset_logistic(design, np.zeros_like(z), y, shrinkage=_REVISION_RIDGE)
    if not ok:
        refused.append("revision, the fit does not converge (the sample separates the outcomes)")
        return None
    fitted = replace(revision, coefficients=tuple(map(float, beta)))
    return fitted, _log_likelihood(y, design @ beta)


class RecalibratedModel(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A fitted risk model with its log-odds remapped to a new site by `choose_recalibration`.

    ``fit`` chooses and fits the update on the site's labelled sample (``choice_``;
    ``intercept_`` and ``slope_`` are ``0`` and ``1`` when the model is kept); with
    ``revise`` the sample's numeric columns are the predictors a revision may refit. The
    wrapped model is left as it is (it must already be fitted).
    """

    def __init__(
        self,
        estimator: Any,
        alpha: float = ALPHA,
        min_events_intercept: int = MIN_EVENTS_INTERCEPT,
        min_events_slope: int = MIN_EVENTS_SLOPE,
        revise: bool = True,
    ) -> None:
        self.estimator = estimator
        self.alpha = alpha
        self.min_events_intercept = min_events_intercept
        self.min_events_slope = min_events_slope
        self.revise = revise

    def fit(self, X: pd.DataFrame, y: ArrayLike) -> RecalibratedModel:
        """Choose and fit the recalibration on the site's labelled sample.

        Raises:
            DataError: y is not 0/1, or an option is out of range.
            sklearn.exceptions.NotFittedError: the wrapped model is not fitted.
        """
        check_is_fitted(self.estimator)
        risk = self.estimator.predict_proba(X)[:, 1]
        self.choice_ = choose_recalibration(
            y, risk, alpha=self.alpha, min_events_intercept=self.min_events_intercept,
            min_events_slope=self.min_events_slope, features=X if self.revise else None,
        )  # fmt: skip
        self.intercept_, self.slope_ = self.choice_.intercept, self.choice_.slope
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: pd.DataFrame) -> NDArray[np.float64]:
        """Recalibrated probabilities, shape (n, 2).

        Raises:
            sklearn.exceptions.NotFittedError: `fit` has not been called.
        """
        check_is_fitted(self)
        risk = self.choice_.apply(self.estimator.predict_proba(X)[:, 1], X)
        return np.column_stack([1 - risk, risk])

    def predict(self, X: pd.DataFrame) -> NDArray[np.int64]:
        """1 where the recalibrated risk is at least 0.5."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(np.int64)
