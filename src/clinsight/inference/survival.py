"""The result of a survival model for one patient: the predicted curve with its band, the
population's Kaplan-Meier curve, the risk by each horizon, and the factors that move it.

A factor's effect is the change in the risk by the headline horizon (the longest asked
for) when that one input is set to the training population's typical value (median or
most frequent) instead of the patient's: positive means the patient's value raises it.
Shared by the survival use case and its FHIR, CDS Hooks and web renderings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from clinsight.data.survival import DAYS_PER_YEAR
from clinsight.inference.cache import SurvivalPredictor
from clinsight.registry.survival import SurvivalModelVersion

__all__ = ["HorizonRisk", "SurvivalFactor", "SurvivalResult", "predict_patient"]

CURVE_POINTS = 60


@dataclass(frozen=True)
class HorizonRisk:
    """The risk of the event by `years`, with its band (None without band refits)."""

    years: float
    risk: float
    low: float | None
    high: float | None


@dataclass(frozen=True)
class SurvivalFactor:
    """One input's push on the headline risk (see module doc)."""

    feature: str
    value: Any
    unit: str | None
    reference: Any
    effect: float

    @property
    def direction(self) -> str:
        """``raises`` or ``lowers``."""
        return "raises" if self.effect > 0 else "lowers"


@dataclass(frozen=True)
class SurvivalResult:
    """A patient's predicted survival and what drives it."""

    model: SurvivalModelVersion
    days: tuple[float, ...]
    survival: tuple[float, ...]
    low: tuple[float, ...] | None
    high: tuple[float, ...] | None
    horizons: tuple[HorizonRisk, ...]
    factors: tuple[SurvivalFactor, ...]
    inputs: dict[str, Any]
    missing: tuple[str, ...]
    input_sha256: str

    @property
    def headline(self) -> HorizonRisk:
        """The risk by the longest horizon asked for."""
        return self.horizons[-1]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for the CLI and the API)."""
        km = self.model.population["kaplan_meier"]
        return {
            "model": {"name": self.model.name, "version": self.model.version},
            "event": self.model.event_label,
            "horizons": [{"years": h.years, "risk": h.risk, "low": h.low, "high": h.high}
                         for h in self.horizons],
            "curve": {"days": list(self.days), "survival": list(self.survival),
                      "low": None if self.low is None else list(self.low),
                      "high": None if self.high is None else list(self.high)},
            "population_kaplan_meier": {"days": km["days"], "survival": km["survival"]},
            "factors": [{"feature": f.feature, "value": f.value, "unit": f.unit,
                         "reference": f.reference, "effect": f.effect} for f in self.factors],
            "inputs": self.inputs, "missing": list(self.missing),
            "max_horizon_years": self.model.max_horizon_days / DAYS_PER_YEAR,
            "input_sha256": self.input_sha256,
        }  # fmt: skip


def _band(model: Any, frame: pd.DataFrame, days: np.ndarray) -> tuple[Any, Any]:
    if not getattr(model, "band_", None):
        return None, None
    low, high = model.predict_band(frame, days)
    return low[0], high[0]


def predict_patient(
    predictor: SurvivalPredictor,
    frame: pd.DataFrame,
    horizons_years: tuple[float, ...],
    *,
    inputs: dict[str, Any],
    missing: tuple[str, ...],
    input_sha256: str,
) -> SurvivalResult:
    """The result for the one-row, checked and typed `frame` (horizons within follow-up)."""
    version, model = predictor.version, predictor.model
    days = np.linspace(0.0, version.max_horizon_days, CURVE_POINTS)
    at = np.asarray([h * DAYS_PER_YEAR for h in horizons_years])
    survival = model.predict_survival(frame, days)[0]
    low, high = _band(model, frame, days)
    risk_at = 1.0 - model.predict_survival(frame, at)[0]
    band_low, band_high = _band(model, frame, at)
    horizons = tuple(
        HorizonRisk(float(y), float(risk_at[i]),
                    None if band_high is None else float(1.0 - band_high[i]),
                    None if band_low is None else float(1.0 - band_low[i]))
        for i, y in enumerate(horizons_years)
    )  # fmt: skip
    variants = []
    for feature in version.task.feature_names:
        changed = frame.copy()
        changed[feature] = version.reference.get(feature)
        variants.append(changed)
    shifted = 1.0 - model.predict_survival(pd.concat(variants), at[-1:])[:, 0]
    units = version.task.units
    factors = sorted(
        (SurvivalFactor(name, inputs.get(name), units.get(name), version.reference.get(name),
                        float(risk_at[-1] - shifted[i]))
         for i, name in enumerate(version.task.feature_names)),
        key=lambda f: -abs(f.effect),
    )  # fmt: skip
    return SurvivalResult(
        model=version, days=tuple(float(d) for d in days),
        survival=tuple(float(s) for s in survival),
        low=None if low is None else tuple(float(v) for v in low),
        high=None if high is None else tuple(float(v) for v in high),
        horizons=horizons, factors=tuple(factors), inputs=inputs, missing=missing,
        input_sha256=input_sha256,
    )  # fmt: skip
