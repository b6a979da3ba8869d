"""Time-to-event data: typed features, follow-up times and event flags, checked.

The two breast-cancer cohorts scikit-survival ships (read from its package files, nothing
downloaded): GBSG2 (German Breast Cancer Study Group 2, 686 patients, recurrence-free
survival) and the Desmedt et al. 2007 cohort (198 patients, 76 Affymetrix probes plus
clinical covariates, time to distant metastasis). Times are in days. Every loader and
every training call checks the outcome with `check_outcome`: no negative or missing time,
an event flag of 0/1 only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from clinsight.data.plausibility import PlausibleRange
from clinsight.data.tabular import FeatureSpec, FeatureType, TaskSpec, check_plausibility
from clinsight.errors import DataError, DataNotFoundError

__all__ = [
    "DAYS_PER_YEAR",
    "SURVIVAL_DATASETS",
    "SurvivalDataset",
    "check_outcome",
    "load_survival_dataset",
    "outcome_fields",
    "survival_target",
]

DAYS_PER_YEAR = 365.25
_CLINICAL_SOURCE = "clinical limit of an adult breast-cancer patient"


def check_outcome(
    time: ArrayLike, event: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Follow-up times (days, finite, >= 0) and event flags (0/1 or booleans), checked.

    Raises:
        DataError: a time is missing, not a number or negative; a flag is not 0/1; the
            lengths differ; or no event is observed (nothing to learn a hazard from).
    """
    raw_time = pd.to_numeric(pd.Series(np.asarray(time, dtype=object)), errors="coerce")
    times = raw_time.to_numpy(dtype=np.float64)
    flags = pd.Series(np.asarray(event, dtype=object))
    if len(times) != len(flags):
        raise DataError(f"{len(times)} follow-up times but {len(flags)} event flags.")
    bad_time = np.flatnonzero(~np.isfinite(times))
    if bad_time.size:
        raise DataError(
            f"row {bad_time[0] + 1}: the follow-up time is missing or not a number; every "
            "patient needs a time (to the event, or to the last contact if censored)."
        )
    negative = np.flatnonzero(times < 0)
    if negative.size:
        raise DataError(
            f"row {negative[0] + 1}: follow-up time {times[negative[0]]:g} is negative; "
            "times count from the start of follow-up."
        )
    valid = flags.map(lambda v: isinstance(v, bool | np.bool_) or v in (0, 1, 0.0, 1.0))
    if not valid.all():
        pos = int(np.flatnonzero(~valid.to_numpy())[0])
        raise DataError(
            f"row {pos + 1}: event flag {flags.iloc[pos]!r} is not 0/1 (1 = the event "
            "happened, 0 = censored)."
        )
    events = flags.astype(bool).to_numpy()
    if not events.any():
        raise DataError("no event is observed; a survival model needs at least one event.")
    return times, events


def outcome_fields(y: NDArray[Any]) -> tuple[str, str]:
    """The (event, time) field names of a structured outcome array.

    Raises:
        DataError: `y` is not a structured array of two fields.
    """
    names = np.asarray(y).dtype.names
    if names is None or len(names) != 2:
        raise DataError("the outcome must be a structured array of (event flag, time).")
    return names[0], names[1]


def survival_target(time: ArrayLike, event: ArrayLike) -> NDArray[Any]:
    """The checked outcome as scikit-survival's structured array (``event``, ``time``).

    Raises:
        DataError: see `check_outcome`.
    """
    times, events = check_outcome(time, event)
    target = np.empty(len(times), dtype=[("event", bool), ("time", np.float64)])
    target["event"], target["time"] = events, times
    return target


@dataclass(frozen=True)
class SurvivalDataset:
    """Typed features, the outcome (days, event flags) and where they came from.

    ``spec.target`` names the event, ``spec.positive_label`` says what it is; ``groups``
    names feature subsets (e.g. ``clinical`` and ``genes``) a comparison can train on."""

    X: pd.DataFrame
    time: NDArray[np.float64]
    event: NDArray[np.bool_]
    spec: TaskSpec
    sha256: str
    source: str
    groups: dict[str, tuple[str, ...]]

    @property
    def y(self) -> NDArray[Any]:
        """The outcome as scikit-survival's structured array."""
        return survival_target(self.time, self.event)

    @property
    def censoring_rate(self) -> float:
        """Share of patients whose event was not observed."""
        return float(1.0 - self.event.mean())

    def subset(self, features: tuple[str, ...]) -> SurvivalDataset:
        """The data set restricted to `features` (in the spec's order).

        Raises:
            DataError: a name is not a feature of the data set.
        """
        unknown = [f for f in features if f not in self.spec.feature_names]
        if unknown:
            raise DataError(f"{unknown[0]!r} is not a feature of {self.spec.name}.")
        kept = tuple(f for f in self.spec.features if f.name in features)
        age = self.spec.age_column if self.spec.age_column in features else None
        spec = TaskSpec(self.spec.name, self.spec.target, self.spec.positive,
                        self.spec.positive_label, kept, None, age)  # fmt: skip
        return SurvivalDataset(self.X[spec.feature_names], self.time, self.event, spec,
                               self.sha256, self.source, {})  # fmt: skip


def _numeric(name: str, unit: str, low: float, high: float) -> FeatureSpec:
    return FeatureSpec(name, FeatureType.NUMERIC, unit,
                       plausible=PlausibleRange(low, high, _CLINICAL_SOURCE))  # fmt: skip


def _categorical(name: str, categories: tuple[str, ...]) -> FeatureSpec:
    return FeatureSpec(name, FeatureType.CATEGORICAL, categories=categories)


def _build(
    name: str, label: str, raw: pd.DataFrame, y: NDArray[Any], features: tuple[FeatureSpec, ...],
    groups: dict[str, tuple[str, ...]], source: str,
) -> SurvivalDataset:  # fmt: skip
    event_field, time_field = outcome_fields(y)
    spec = TaskSpec(name, event_field, "1", label, features, None, "age")
    frame = pd.DataFrame(
        {
            f.name: raw[f.name].astype(str)
            if f.type is FeatureType.CATEGORICAL
            else raw[f.name].astype(float)
            for f in features
        }
    )
    typed, _ = check_plausibility(frame, frame, spec)
    times, events = check_outcome(y[time_field], y[event_field])
    digest = hashlib.sha256(
        frame.to_csv(index=False).encode() + np.asarray(y[time_field]).tobytes()
        + np.asarray(y[event_field]).tobytes()
    ).hexdigest()  # fmt: skip
    return SurvivalDataset(typed, times, events, spec, digest, source, groups)


def _gbsg2() -> SurvivalDataset:
    from sksurv.datasets import load_gbsg2

    raw, y = load_gbsg2()
    features = (
        _numeric("age", "years", 18, 100),
        _numeric("estrec", "fmol/mg", 0, 10000),
        _categorical("horTh", ("no", "yes")),
        _categorical("menostat", ("Pre", "Post")),
        _numeric("pnodes", "nodes", 0, 100),
        _numeric("progrec", "fmol/mg", 0, 10000),
        _categorical("tgrade", ("I", "II", "III")),
        _numeric("tsize", "mm", 1, 300),
    )
    return _build("gbsg2", "recurrence or death", raw, y, features, {},
                  "scikit-survival load_gbsg2 (GBSG2.arff)")  # fmt: skip


def _breast_cancer_genes() -> SurvivalDataset:
    from sksurv.datasets import load_breast_cancer

    raw, y = load_breast_cancer()
    probes = tuple(str(c) for c in raw.columns if str(c).startswith("X"))
    clinical = (
        _numeric("age", "years", 18, 100),
        _categorical("er", ("negative", "positive")),
        _categorical("grade", tuple(str(c) for c in raw["grade"].cat.categories)),
        _numeric("size", "cm", 0.1, 30),
    )
    genes = tuple(
        FeatureSpec(p, FeatureType.NUMERIC, "log2 expression", plausible=PlausibleRange(
            -20, 30, "range of log2 Affymetrix intensities"))
        for p in probes
    )  # fmt: skip
    groups = {"clinical": tuple(f.name for f in clinical), "genes": probes}
    return _build("breast_cancer_genes", "distant metastasis", raw, y, genes + clinical, groups,
                  "scikit-survival load_breast_cancer (GSE7390, Desmedt et al. 2007)")  # fmt: skip


SURVIVAL_DATASETS: dict[str, Callable[[], SurvivalDataset]] = {
    "gbsg2": _gbsg2,
    "breast_cancer_genes": _breast_cancer_genes,
}
"""Built-in time-to-event data sets, by name."""


def load_survival_dataset(name: str) -> SurvivalDataset:
    """A built-in time-to-event data set (see `SURVIVAL_DATASETS`).

    Raises:
        DataNotFoundError: `name` is not a built-in data set.
    """
    if name not in SURVIVAL_DATASETS:
        raise DataNotFoundError(
            f"No survival data set {name!r}; built in: {', '.join(SURVIVAL_DATASETS)}."
        )
    return SURVIVAL_DATASETS[name]()
