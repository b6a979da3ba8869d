"""Decision thresholds of a binary model, chosen on the validation split.

Two cut-offs on the calibrated positive-class probability p:

- `low`: the largest validation score at which calling every case with p >= low "not
  negative" keeps the sensitivity >= the target (below `low`, few positives are missed);
- `high`: the smallest validation score at which calling every case with p >= high positive
  keeps the specificity >= the target (above `high`, few negatives are called positive).

A case is positive when p >= high, negative when p < min(low, high), and indeterminate in
between. When low >= high there is no band: the single cut `high` meets both targets, since
its sensitivity is at least that of `low`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from clinsight.errors import DataError

__all__ = ["INDETERMINATE", "DecisionThresholds", "choose_thresholds"]

INDETERMINATE = "indeterminate"
_FLOAT_FIELDS = (
    "low", "high", "sensitivity", "specificity", "sensitivity_target", "specificity_target",
    "indeterminate_fraction",
)  # fmt: skip


@dataclass(frozen=True)
class DecisionThresholds:
    """The band of a binary model and what it achieved on the validation split.

    `sensitivity` is the share of validation positives with p >= low; `specificity` the
    share of validation negatives with p < high; `indeterminate_fraction` the share of
    validation cases inside the band.
    """

    low: float
    high: float
    sensitivity: float
    specificity: float
    sensitivity_target: float
    specificity_target: float
    indeterminate_fraction: float
    n_positive: int
    n_negative: int
    split: str = "validation"

    @property
    def has_band(self) -> bool:
        """Whether some probabilities are indeterminate (low < high)."""
        return self.low < self.high

    def decide(self, positive_probability: float, positive: str, negative: str) -> str:
        """The finding for one calibrated positive-class probability: a label or
        `INDETERMINATE`."""
        if positive_probability >= self.high:
            return positive
        if positive_probability < min(self.low, self.high):
            return negative
        return INDETERMINATE

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (as stored in model.json and with each prediction)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DecisionThresholds:
        """Read the stored form.

        Raises:
            DataError: a field is missing or not a number.
        """
        try:
            return cls(
                **{name: float(data[name]) for name in _FLOAT_FIELDS},
                n_positive=int(data["n_positive"]),
                n_negative=int(data["n_negative"]),
                split=str(data.get("split", "validation")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"Malformed decision thresholds {data!r}: {exc}") from exc


def _count_needed(target: float, n: int) -> int:
    # The fewest of n cases reaching `target`, robust to 0.95 * 20 = 19.000000000000004.
    return max(1, math.ceil(round(target * n, 9)))


def choose_thresholds(
    positive_probability: ArrayLike,
    is_positive: ArrayLike,
    *,
    sensitivity_target: float = 0.95,
    specificity_target: float = 0.95,
) -> DecisionThresholds:
    """The `low` and `high` cut-offs (see the module) for validation probabilities and labels.

    Raises:
        DataError: the arrays differ in length, are not finite probabilities, lack a positive
            or a negative case, or a target lies outside (0, 1].
    """
    p = np.asarray(positive_probability, dtype=np.float64).ravel()
    y = np.asarray(is_positive).ravel().astype(bool)
    if p.shape != y.shape or not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise DataError("Thresholds need one finite probability in [0, 1] per label.")
    for target in (sensitivity_target, specificity_target):
        if not 0 < target <= 1:
            raise DataError(f"A sensitivity or specificity target must lie in (0, 1]; {target}.")
    positives, negatives = np.sort(p[y])[::-1], np.sort(p[~y])
    if not len(positives) or not len(negatives):
        raise DataError("Thresholds need at least one positive and one negative case.")
    low = float(positives[_count_needed(sensitivity_target, len(positives)) - 1])
    beaten = negatives[_count_needed(specificity_target, len(negatives)) - 1]
    above = np.unique(p[p > beaten])
    high = float(above[0]) if len(above) else math.nextafter(float(beaten), math.inf)
    inside = (p >= min(low, high)) & (p < high)
    return DecisionThresholds(
        low=low,
        high=high,
        sensitivity=float(np.mean(positives >= low)),
        specificity=float(np.mean(negatives < high)),
        sensitivity_target=sensitivity_target,
        specificity_target=specificity_target,
        indeterminate_fraction=float(np.mean(inside)),
        n_positive=len(positives),
        n_negative=len(negatives),
    )
