"""Time-to-event metrics: Kaplan-Meier and Nelson-Aalen, concordance, time-dependent AUC,
Brier score, calibration at a horizon, bootstrap intervals.

Kaplan-Meier, Nelson-Aalen, Harrell's C and the horizon calibration are computed here
(the tests check the first three against scikit-survival); Uno's C, the cumulative/dynamic
AUC and the integrated Brier score use scikit-survival's inverse-probability-of-censoring
weighted estimators, with the censoring distribution estimated on the training rows.

Calibration at horizon t: patients are cut into risk groups by predicted risk ``1 - S(t)``;
in each group the observed risk is ``1 - KM(t)``; intercept and slope come from a
least-squares line of observed on predicted risk weighted by group size (ideal: 0 and 1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from clinsight.evaluation.metrics import json_float, percentile_interval

__all__ = [
    "HorizonCalibration",
    "bootstrap_interval",
    "harrell_c",
    "horizon_calibration",
    "integrated_brier",
    "kaplan_meier",
    "kaplan_meier_band",
    "nelson_aalen",
    "time_auc",
    "uno_c",
]


def _counts(
    time: ArrayLike, event: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    t = np.asarray(time, dtype=np.float64)
    e = np.asarray(event, dtype=bool)
    times = np.unique(t)
    at_risk = np.array([np.sum(t >= u) for u in times], dtype=np.float64)
    deaths = np.array([np.sum(e & (t == u)) for u in times], dtype=np.float64)
    return times, at_risk, deaths


def kaplan_meier(
    time: ArrayLike, event: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The product-limit survival estimate at each distinct time (right-continuous)."""
    times, at_risk, deaths = _counts(time, event)
    return times, np.asarray(np.cumprod(1.0 - deaths / at_risk), dtype=np.float64)


def kaplan_meier_band(
    time: ArrayLike, event: ArrayLike, level: float = 0.95
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Times, KM survival and its pointwise band (Greenwood variance, log(-log) scale)."""
    from scipy.stats import norm

    times, at_risk, deaths = _counts(time, event)
    surv = np.cumprod(1.0 - deaths / at_risk)
    with np.errstate(divide="ignore", invalid="ignore"):
        greenwood = np.cumsum(deaths / (at_risk * (at_risk - deaths)))
        log_surv = np.log(surv)
        se = np.sqrt(greenwood) / np.abs(log_surv)
        z = norm.ppf(0.5 + level / 2)
        low = np.exp(-np.exp(np.log(-log_surv) + z * se))
        high = np.exp(-np.exp(np.log(-log_surv) - z * se))
    low = np.asarray(np.where(np.isfinite(low), low, surv), dtype=np.float64)
    high = np.asarray(np.where(np.isfinite(high), high, surv), dtype=np.float64)
    return times, np.asarray(surv, dtype=np.float64), low, high


def nelson_aalen(
    time: ArrayLike, event: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The Nelson-Aalen cumulative hazard at each distinct time."""
    times, at_risk, deaths = _counts(time, event)
    return times, np.cumsum(deaths / at_risk)


def harrell_c(time: ArrayLike, event: ArrayLike, risk: ArrayLike) -> float:
    """Harrell's concordance: among comparable pairs (an event before the other's time, or at
    the time the other was censored), the share where the event has the higher risk; ties
    in risk (within 1e-8) count one half.

    Raises:
        ValueError: no comparable pair (no event before another patient's time).
    """
    t = np.asarray(time, dtype=np.float64)
    e = np.asarray(event, dtype=bool)
    r = np.asarray(risk, dtype=np.float64)
    later = (t[:, None] < t[None, :]) | ((t[:, None] == t[None, :]) & ~e[None, :])
    shorter = e[:, None] & later
    comparable = shorter.sum()
    if comparable == 0:
        raise ValueError("no comparable pairs: Harrell's C needs an event before another time.")
    gap = r[:, None] - r[None, :]
    tied = (shorter & (np.abs(gap) <= 1e-8)).sum()
    concordant = (shorter & (gap > 1e-8)).sum()
    return float((concordant + 0.5 * tied) / comparable)


def uno_c(train: NDArray[Any], test: NDArray[Any], risk: ArrayLike, tau: float) -> float:
    """Uno's IPCW concordance truncated at `tau` (censoring estimated on `train`)."""
    from sksurv.metrics import concordance_index_ipcw

    return float(concordance_index_ipcw(train, test, np.asarray(risk), tau=tau)[0])


def time_auc(
    train: NDArray[Any], test: NDArray[Any], risk_at: NDArray[np.float64], times: Sequence[float]
) -> list[float]:
    """Cumulative/dynamic AUC at each time, with `risk_at` of shape (n, len(times))."""
    from sksurv.metrics import cumulative_dynamic_auc

    auc, _ = cumulative_dynamic_auc(train, test, risk_at, np.asarray(times, dtype=np.float64))
    return [float(a) for a in auc]


def integrated_brier(
    train: NDArray[Any], test: NDArray[Any], survival: NDArray[np.float64], grid: ArrayLike
) -> float:
    """IPCW integrated Brier score over `grid` (survival of shape (n, len(grid)))."""
    from sksurv.metrics import integrated_brier_score

    return float(integrated_brier_score(train, test, survival, np.asarray(grid)))


@dataclass(frozen=True)
class HorizonCalibration:
    """Predicted against Kaplan-Meier observed risk in risk groups at one horizon."""

    horizon: float
    predicted: tuple[float, ...]
    observed: tuple[float, ...]
    sizes: tuple[int, ...]
    intercept: float
    slope: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "horizon_days": self.horizon, "predicted": list(self.predicted),
            "observed": list(self.observed), "sizes": list(self.sizes),
            "intercept": json_float(self.intercept), "slope": json_float(self.slope),
        }  # fmt: skip


def horizon_calibration(
    time: ArrayLike, event: ArrayLike, risk: ArrayLike, horizon: float, groups: int = 5
) -> HorizonCalibration:
    """Calibration of predicted risks of an event by `horizon` (see module doc).

    Raises:
        ValueError: fewer rows than twice the number of groups.
    """
    t = np.asarray(time, dtype=np.float64)
    e = np.asarray(event, dtype=bool)
    r = np.asarray(risk, dtype=np.float64)
    if len(r) < 2 * groups:
        raise ValueError(f"calibration needs at least {2 * groups} rows; got {len(r)}.")
    order = np.argsort(r, kind="stable")
    predicted, observed, sizes = [], [], []
    for part in np.array_split(order, groups):
        times, surv = kaplan_meier(t[part], e[part])
        index = np.searchsorted(times, horizon, side="right") - 1
        observed.append(float(1.0 - (surv[index] if index >= 0 else 1.0)))
        predicted.append(float(r[part].mean()))
        sizes.append(len(part))
    p, o, w = np.array(predicted), np.array(observed), np.array(sizes, dtype=np.float64)
    pm, om = np.average(p, weights=w), np.average(o, weights=w)
    spread = np.sum(w * (p - pm) ** 2)
    slope = float(np.sum(w * (p - pm) * (o - om)) / spread) if spread > 1e-12 else float("nan")
    return HorizonCalibration(horizon, tuple(predicted), tuple(observed), tuple(sizes),
                              float(om - slope * pm), slope)  # fmt: skip


def bootstrap_interval(
    statistic: Callable[[NDArray[np.intp]], float],
    n: int,
    replicates: int = 200,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float | None, float | None]:
    """Percentile interval of ``statistic(rows)`` over bootstrap resamples of ``n`` rows;
    resamples where the statistic is undefined (ValueError) are skipped."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(replicates):
        try:
            values.append(statistic(rng.integers(0, n, n)))
        except ValueError:
            continue
    if len(values) < 10:
        return None, None
    low, high = percentile_interval(values, confidence)
    return json_float(low), json_float(high)
