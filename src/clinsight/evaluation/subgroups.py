"""Subgroup metrics: AUC, sensitivity and specificity by sex and by age band, and their gaps.

A group is scored only when it has at least ``min_group_size`` patients and at least
``min_per_class`` patients with and without the outcome; otherwise it is listed with its
size and prevalence and marked as too small, so nobody reads a metric off ten patients.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from clinsight.errors import DataError
from clinsight.evaluation.metrics import json_float, roc_auc

__all__ = [
    "DEFAULT_AGE_EDGES",
    "GroupMetrics",
    "SubgroupReport",
    "age_band_labels",
    "age_bands",
    "subgroup_metrics",
    "subgroup_reports",
]

DEFAULT_AGE_EDGES: tuple[float, ...] = (40.0, 50.0, 60.0, 70.0)
"""Age band boundaries in years: <40, 40-49, 50-59, 60-69, ≥70."""

_METRICS = ("auc", "sensitivity", "specificity")


@dataclass(frozen=True)
class GroupMetrics:
    """One subgroup's size, prevalence and (when scored) discrimination at the threshold."""

    group: str
    n: int
    n_positive: int
    prevalence: float
    auc: float | None
    sensitivity: float | None
    specificity: float | None
    scored: bool
    note: str | None = None


@dataclass(frozen=True)
class SubgroupReport:
    """Metrics of every group of one attribute, and the largest gap between scored groups."""

    attribute: str
    threshold: float
    groups: tuple[GroupMetrics, ...]
    gaps: dict[str, float | None]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "attribute": self.attribute,
            "threshold": self.threshold,
            "groups": [asdict(g) for g in self.groups],
            "gaps": dict(self.gaps),
        }


def age_band_labels(edges: Sequence[float] = DEFAULT_AGE_EDGES) -> list[str]:
    """The band labels in age order, e.g. ``["<40", "40-49", ..., "≥70"]``.

    Raises:
        DataError: the edges are empty or not strictly increasing.
    """
    bounds = np.asarray(edges, dtype=np.float64)
    if bounds.size == 0 or np.any(np.diff(bounds) <= 0):
        raise DataError(f"age band edges must be strictly increasing; got {list(edges)}.")
    labels = [f"<{bounds[0]:g}"]
    labels += [f"{lo:g}-{hi - 1:g}" for lo, hi in pairwise(bounds)]
    return [*labels, f"≥{bounds[-1]:g}"]


def age_bands(ages: ArrayLike, edges: Sequence[float] = DEFAULT_AGE_EDGES) -> list[str]:
    """Band label of each age (see `age_band_labels`); NaN gives ``"missing"``.

    Raises:
        DataError: the edges are empty or not strictly increasing.
    """
    labels = age_band_labels(edges)
    bounds = np.asarray(edges, dtype=np.float64)
    values = np.asarray(ages, dtype=np.float64)
    index = np.searchsorted(bounds, values, side="right")
    return ["missing" if np.isnan(v) else labels[i] for v, i in zip(values, index, strict=True)]


def _score(
    group: str, y: np.ndarray, risk: np.ndarray, threshold: float, min_size: int, min_class: int
) -> GroupMetrics:
    n, pos = len(y), int(y.sum())
    prevalence = pos / n
    if n < min_size or min(pos, n - pos) < min_class:
        note = (
            f"too small to score: n={n}, {pos} with and {n - pos} without the outcome "
            f"(needs n >= {min_size} and >= {min_class} of each)"
        )
        return GroupMetrics(group, n, pos, prevalence, None, None, None, False, note)
    flagged = risk >= threshold
    sensitivity = float(flagged[y == 1].mean())
    specificity = float((~flagged[y == 0]).mean())
    auc = json_float(roc_auc(y, risk))
    return GroupMetrics(group, n, pos, prevalence, auc, sensitivity, specificity, True)


def subgroup_metrics(
    y_true: ArrayLike,
    risk: ArrayLike,
    groups: ArrayLike,
    *,
    attribute: str,
    labels: Mapping[Any, str] | None = None,
    order: Sequence[str] | None = None,
    threshold: float = 0.5,
    min_group_size: int = 20,
    min_per_class: int = 5,
) -> SubgroupReport:
    """Score each group of one attribute (``labels`` renames raw values, e.g. 1 → "male").

    Groups come in ``order`` (those present), else sorted by label, with ``"missing"``
    (the group of missing values) last.

    Raises:
        DataError: the arrays differ in length, y is not 0/1, or risk is outside [0, 1].
    """
    y = np.asarray(y_true)
    p = np.asarray(risk, dtype=np.float64)
    raw = pd.Series(np.asarray(groups, dtype=object))
    if not (len(y) == len(p) == len(raw)) or len(y) == 0:
        raise DataError(
            f"y_true, risk and groups must be non-empty and equally long; "
            f"got {len(y)}, {len(p)}, {len(raw)}."
        )
    if not np.isin(y, (0, 1)).all():
        raise DataError("y_true must hold only 0 and 1.")
    if not np.all((p >= 0) & (p <= 1)):
        raise DataError("risk must be probabilities in [0, 1].")
    names: Mapping[Any, str] = labels or {}
    keys: list[str] = ["missing" if pd.isna(v) else names.get(v, _label(v)) for v in raw]
    key_array = np.asarray(keys, dtype=object)
    rank: dict[str, int] = {g: i for i, g in enumerate(order or ())}
    present = sorted(set(keys), key=lambda g: (g == "missing", rank.get(g, len(rank)), g))
    scored = tuple(
        _score(key, y[key_array == key].astype(np.int64), p[key_array == key], threshold,
               min_group_size, min_per_class)
        for key in present
    )  # fmt: skip
    gaps: dict[str, float | None] = {}
    for metric in _METRICS:
        values = [getattr(g, metric) for g in scored if g.scored and getattr(g, metric) is not None]
        gaps[metric] = float(max(values) - min(values)) if len(values) >= 2 else None
    return SubgroupReport(attribute, threshold, scored, gaps)


def _label(value: Any) -> str:
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def subgroup_reports(
    y_true: ArrayLike,
    risk: ArrayLike,
    *,
    sex: ArrayLike | None = None,
    sex_labels: Mapping[Any, str] | None = None,
    age: ArrayLike | None = None,
    age_edges: Sequence[float] = DEFAULT_AGE_EDGES,
    threshold: float = 0.5,
    min_group_size: int = 20,
) -> dict[str, SubgroupReport]:
    """Reports by ``"sex"`` and ``"age_band"`` for whichever of the two columns is given.

    Raises:
        DataError: see `subgroup_metrics` and `age_bands`.
    """
    reports: dict[str, SubgroupReport] = {}
    if sex is not None:
        reports["sex"] = subgroup_metrics(
            y_true, risk, sex, attribute="sex", labels=sex_labels, threshold=threshold,
            min_group_size=min_group_size,
        )  # fmt: skip
    if age is not None:
        reports["age_band"] = subgroup_metrics(
            y_true, risk, age_bands(age, age_edges), attribute="age_band",
            order=age_band_labels(age_edges), threshold=threshold, min_group_size=min_group_size,
        )  # fmt: skip
    return reports
