"""The proportional-hazards check of a Cox model: Schoenfeld residuals against time.

Grambsch & Therneau (1994), as R's ``cox.zph``: for each event, the Schoenfeld residual
is the patient's covariates minus their hazard-weighted mean over the risk set; if a
covariate's effect drifts with time, its scaled residuals correlate with (Kaplan-Meier
transformed) time. Each feature (all of its design columns together) and the model as a
whole get a chi-square score test. A small p-value means that feature's hazard ratio is
not constant over follow-up: the model's single hazard ratio is an average, and risks at
early and late horizons for patients who differ in that feature are less trustworthy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import chi2

from clinsight.evaluation.survival import kaplan_meier

__all__ = ["PHTest", "schoenfeld_test"]


@dataclass(frozen=True)
class PHTest:
    """Per-feature and global Schoenfeld tests (chi-square, df, p)."""

    features: dict[str, tuple[float, int, float]]
    global_test: tuple[float, int, float]
    alpha: float = 0.05

    @property
    def violations(self) -> list[str]:
        """Features whose p-value is below ``alpha``."""
        return [name for name, (_, _, p) in self.features.items() if p < self.alpha]

    def meaning(self) -> str:
        """What the result means for someone reading a prediction."""
        if not self.violations:
            return (
                f"No feature's effect changes detectably over follow-up (every p >= "
                f"{self.alpha}): a constant hazard ratio per feature fits these data."
            )
        return (
            f"The effect of {', '.join(self.violations)} changes over follow-up (p < "
            f"{self.alpha}): a Cox model reports an average hazard ratio for it, so risks at "
            "early and late horizons for patients who differ mainly in these features may be "
            "over- or understated; the forest and boosting models do not assume constant effects."
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for the model card)."""

        def row(test: tuple[float, int, float]) -> dict[str, float | int]:
            return {"chi2": round(test[0], 4), "df": test[1], "p": round(test[2], 4)}

        return {
            "method": "Schoenfeld residuals vs Kaplan-Meier-transformed time "
            "(Grambsch-Therneau score test, as R cox.zph)",
            "features": {name: row(t) for name, t in self.features.items()},
            "global": row(self.global_test),
            "violations": self.violations,
            "meaning": self.meaning(),
        }


def schoenfeld_test(
    design: ArrayLike,
    time: ArrayLike,
    event: ArrayLike,
    coef: ArrayLike,
    sources: Sequence[str],
    alpha: float = 0.05,
) -> PHTest:
    """The test for a Cox fit with coefficients `coef` on `design` (n, p), whose columns
    come from the features named in `sources` (one name per column)."""
    x = np.asarray(design, dtype=np.float64)
    t = np.asarray(time, dtype=np.float64)
    e = np.asarray(event, dtype=bool)
    beta = np.asarray(coef, dtype=np.float64)
    weights = np.exp(x @ beta - np.max(x @ beta))
    residuals, information = [], np.zeros((x.shape[1], x.shape[1]))
    event_rows = np.flatnonzero(e)
    for i in event_rows:
        at_risk = t >= t[i]
        w = weights[at_risk]
        mean = w @ x[at_risk] / w.sum()
        centred = x[at_risk] - mean
        information += (centred * w[:, None]).T @ centred / w.sum()
        residuals.append(x[i] - mean)
    s = np.asarray(residuals)
    variance = np.linalg.pinv(information)
    km_times, km = kaplan_meier(t, e)
    g = 1.0 - km[np.searchsorted(km_times, t[event_rows], side="left")]
    gc = g - g.mean()
    d, ss = len(event_rows), float(np.sum(gc**2))
    u = gc @ s
    vu = variance @ u

    def score(columns: NDArray[np.intp]) -> tuple[float, int, float]:
        sub = np.linalg.pinv(variance[np.ix_(columns, columns)])
        stat = float(d * vu[columns] @ sub @ vu[columns] / ss)
        df = max(1, int(np.linalg.matrix_rank(variance[np.ix_(columns, columns)])))
        return stat, df, float(chi2.sf(stat, df))

    names = list(dict.fromkeys(sources))
    features = {name: score(np.flatnonzero(np.asarray(sources) == name)) for name in names}
    total = float(d * u @ variance @ u / ss)
    df = int(np.linalg.matrix_rank(variance))
    return PHTest(features, (total, df, float(chi2.sf(total, df))), alpha)
