"""Per-patient explanations: which features pushed this patient's risk up or down, and by how much.

Contributions are in the log-odds space of the model's uncalibrated full-data pipeline
(`RiskModel.pipeline_`; the calibrator is a monotone map on top of it) and add up exactly:
``base_log_odds + sum(contributions) == log_odds``.

- Logistic regression: exact. Each transformed column contributes
  ``coef * (value - background mean)``; a feature's contribution sums its columns
  (one-hot levels and its missing-value indicator). The baseline is the model at the
  background mean.
- Any other model: interventional Shapley values estimated by antithetic permutation
  sampling (Štrumbelj & Kononenko 2014): features absent from a coalition take values
  from background patients, and the value of a coalition is the mean log-odds over them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from clinsight.errors import DataError
from clinsight.tabular.models import RiskModel
from clinsight.tabular.pipeline import output_sources

__all__ = ["Contribution", "Explanation", "explain_patient"]


@dataclass(frozen=True)
class Contribution:
    """One feature's push on the log-odds of this patient's risk, with the patient's value.

    ``value`` is None where the patient's value was missing (the imputed value was used).
    """

    feature: str
    value: Any
    unit: str | None
    log_odds: float

    @property
    def direction(self) -> Literal["increases", "decreases"]:
        """Whether this feature raised or lowered the risk."""
        return "increases" if self.log_odds > 0 else "decreases"


@dataclass(frozen=True)
class Explanation:
    """A patient's calibrated risk and the additive story behind the model's score."""

    probability: float
    log_odds: float
    base_log_odds: float
    contributions: tuple[Contribution, ...]
    method: Literal["linear-exact", "shapley-permutation"]

    def top(self, k: int = 5) -> tuple[Contribution, ...]:
        """The ``k`` contributions with the largest magnitude (already sorted that way)."""
        return self.contributions[:k]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "probability": self.probability,
            "log_odds": self.log_odds,
            "base_log_odds": self.base_log_odds,
            "method": self.method,
            "contributions": [
                {
                    "feature": c.feature,
                    "value": c.value,
                    "unit": c.unit,
                    "log_odds": c.log_odds,
                    "direction": c.direction,
                }
                for c in self.contributions
            ],
        }


def _plain(value: Any) -> Any:
    """A cell as a JSON-ready Python value: None when missing, numpy scalars unwrapped."""
    if pd.isna(value):
        return None
    return value.item() if isinstance(value, np.generic) else value


def _linear(
    model: RiskModel, patient: pd.DataFrame, background: pd.DataFrame
) -> tuple[float, dict[str, float]]:
    pipeline = model.pipeline_
    preprocess, select, linear = (
        pipeline.named_steps[s] for s in ("preprocess", "select", "model")
    )
    mask = select.get_support()
    sources = np.asarray(output_sources(preprocess), dtype=object)[mask]
    coef = linear.coef_[0]
    x = select.transform(preprocess.transform(patient))[0]
    mean = select.transform(preprocess.transform(background)).mean(axis=0)
    base = float(linear.intercept_[0] + coef @ mean)
    per_column = coef * (x - mean)
    totals = {name: 0.0 for name in model.feature_types_}
    for source, value in zip(sources, per_column, strict=True):
        totals[str(source)] += float(value)
    return base, totals


def _shapley(
    model: RiskModel,
    patient: pd.DataFrame,
    background: pd.DataFrame,
    n_permutations: int,
    random_state: int,
) -> tuple[float, dict[str, float], float]:
    """Base value, per-feature Shapley values and the patient's own log-odds, from one batch.

    The last coalition of every permutation takes all features from the patient, so the
    patient's log-odds come out of the same model call (no separate pass).
    """
    names = list(model.feature_types_)
    d, m = len(names), len(background)
    rng = np.random.default_rng(random_state)
    half = max(1, n_permutations // 2)
    orders = [rng.permutation(d) for _ in range(half)]
    orders += [order[::-1] for order in orders]
    # For each permutation, coalitions of size 0..d: mask[k] = first k features taken from x.
    masks = np.zeros((len(orders), d + 1, d), dtype=bool)
    for p, order in enumerate(orders):
        for k in range(1, d + 1):
            masks[p, k] = masks[p, k - 1]
            masks[p, k, order[k - 1]] = True
    flat = np.repeat(masks.reshape(-1, d), m, axis=0)
    rows = np.tile(np.arange(m), len(orders) * (d + 1))
    mixed = {
        name: np.where(flat[:, j], patient[name].to_numpy()[0], background[name].to_numpy()[rows])
        for j, name in enumerate(names)
    }
    frame = pd.DataFrame(mixed).astype(background[names].dtypes.to_dict())
    values = model.raw_log_odds(frame).reshape(len(orders), d + 1, m).mean(axis=2)
    deltas = np.diff(values, axis=1)
    phi = np.zeros(d)
    for p, order in enumerate(orders):
        phi[order] += deltas[p]
    phi /= len(orders)
    totals = {name: float(v) for name, v in zip(names, phi, strict=True)}
    return float(values[0, 0]), totals, float(values[0, d])


def explain_patient(
    model: RiskModel,
    patient: pd.DataFrame,
    background: pd.DataFrame,
    *,
    units: dict[str, str | None] | None = None,
    n_permutations: int = 16,
    max_background: int = 50,
    random_state: int = 0,
) -> Explanation:
    """Explain one patient's risk against a background sample (e.g. the training rows).

    Features are ordered by the size of their contribution. The background is subsampled
    (seeded) to ``max_background`` rows for the permutation method.

    Raises:
        DataError: ``patient`` is not a single row, the background is empty, or a model
            feature is missing from either.
        sklearn.exceptions.NotFittedError: the model is not fitted.
    """
    if len(patient) != 1:
        raise DataError(f"explain_patient needs exactly one patient row; got {len(patient)}.")
    if background.empty:
        raise DataError("explain_patient needs background rows to compare the patient against.")
    names = list(model.feature_types_)
    for frame, label in ((patient, "patient"), (background, "background")):
        absent = [n for n in names if n not in frame.columns]
        if absent:
            raise DataError(f"column {absent[0]!r} is missing from the {label} data.")
    if len(background) > max_background:
        background = background.sample(max_background, random_state=random_state)
    patient, background = patient[names], background[names]
    method: Literal["linear-exact", "shapley-permutation"]
    if isinstance(model.pipeline_.named_steps["model"], LogisticRegression):
        log_odds = float(model.raw_log_odds(patient)[0])
        base, totals = _linear(model, patient, background)
        method = "linear-exact"
    else:
        base, totals, log_odds = _shapley(model, patient, background, n_permutations, random_state)
        method = "shapley-permutation"
    unit_of = units or {}
    contributions = sorted(
        (
            Contribution(name, _plain(patient[name].iloc[0]), unit_of.get(name), totals[name])
            for name in names
        ),
        key=lambda c: -abs(c.log_odds),
    )
    probability = float(model.predict_proba(patient)[0, 1])
    return Explanation(probability, log_odds, base, tuple(contributions), method)
