"""Time-binned arrays of task samples: values, observation masks, time since last observation.

`bin_samples` turns irregular measurements into (N, T, V) arrays of hourly (by default)
bins, NaN where a variable was not observed in a bin (the last value of the bin; urine
output, a volume per interval, is summed). `Standardiser` is fitted on the training split
only and turns the arrays into model inputs: standardised values (0, the training mean,
where missing), the mask, and the hours since the variable was last observed (GRU-D's
delta), scaled by the window length. Nothing is imputed silently: the mask says what was
observed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from clinsight.data.physionet2012 import ICU_TYPES, ProgressionSpec
from clinsight.data.tasks import TaskSample
from clinsight.errors import DataError

__all__ = [
    "STATIC_FEATURES",
    "BinSpec",
    "ModelInputs",
    "SequenceArrays",
    "Standardiser",
    "bin_samples",
]

STATIC_FEATURES = (
    "age", "male", "height", "weight", "height_missing", "weight_missing",
    *(f"icu_{code}" for code in ICU_TYPES),
)  # fmt: skip
"""The per-stay descriptors a model reads beside the series (ICU type one-hot)."""

_SUMMED = frozenset({"Urine"})


@dataclass(frozen=True)
class BinSpec:
    """The variables, their order and transforms, and the bins of a model's input."""

    variables: tuple[str, ...]
    log_variables: frozenset[str] = frozenset()
    hours: float = 48.0
    bin_hours: float = 1.0

    @property
    def bins(self) -> int:
        return round(self.hours / self.bin_hours)

    @classmethod
    def from_spec(
        cls, spec: ProgressionSpec, hours: float = 48.0, bin_hours: float = 1.0
    ) -> BinSpec:
        """All time-series variables of a variable spec, in its order."""
        logs = frozenset(v.name for v in spec.variables.values() if v.transform == "log")
        return cls(spec.variable_names, logs, hours, bin_hours)

    def to_dict(self) -> dict[str, Any]:
        return {
            "variables": list(self.variables), "log_variables": sorted(self.log_variables),
            "hours": self.hours, "bin_hours": self.bin_hours,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> BinSpec:
        return cls(
            tuple(raw["variables"]), frozenset(raw["log_variables"]),
            float(raw["hours"]), float(raw["bin_hours"]),
        )  # fmt: skip


@dataclass
class SequenceArrays:
    """Binned samples before standardisation (NaN = not observed / not recorded)."""

    values: NDArray[np.float32]
    """(N, T, V) transformed values, NaN where not observed."""
    static: NDArray[np.float32]
    """(N, S) descriptors in `STATIC_FEATURES` order, NaN where not recorded."""
    labels: NDArray[np.int64]
    """(N,) 0/1, -1 where unknown (prediction)."""
    patient_ids: NDArray[np.str_]
    sex: NDArray[np.str_]
    """``female``, ``male`` or ``missing``."""
    age: NDArray[np.float64]
    saps1: NDArray[np.float64]
    """SAPS-I where the source states it, else NaN (a baseline, never a model input)."""
    counts: NDArray[np.int32] = field(default_factory=lambda: np.zeros((0, 0), np.int32))
    """(N, V) number of observations of each variable in the window."""
    slopes: NDArray[np.float32] = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    """(N, V) least-squares slope per hour of the raw (transformed) observations, NaN if < 2."""

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index: NDArray[np.int64]) -> SequenceArrays:
        """The rows in `index`."""
        return SequenceArrays(
            self.values[index], self.static[index], self.labels[index], self.patient_ids[index],
            self.sex[index], self.age[index], self.saps1[index], self.counts[index],
            self.slopes[index],
        )  # fmt: skip

    def save(self, path: Path) -> None:
        """An ``.npz`` cache of the arrays (no pickle)."""
        np.savez_compressed(
            path, values=self.values, static=self.static, labels=self.labels,
            patient_ids=self.patient_ids, sex=self.sex, age=self.age, saps1=self.saps1,
            counts=self.counts, slopes=self.slopes,
        )  # fmt: skip

    @classmethod
    def load(cls, path: Path) -> SequenceArrays:
        with np.load(path, allow_pickle=False) as data:
            return cls(**{name: data[name] for name in data.files})


def _static_row(sample: TaskSample) -> list[float]:
    static = sample.static
    gender = static.get("gender")
    height, weight = static.get("height"), static.get("weight")
    icu = static.get("icu_type")
    row = [
        np.nan if sample.age is None else float(sample.age),
        np.nan if gender is None else float(gender),
        np.nan if height is None else float(height),
        np.nan if weight is None else float(weight),
        float(height is None),
        float(weight is None),
    ]
    row += [float(icu == code) for code in ICU_TYPES]
    return row


def bin_samples(samples: Sequence[TaskSample], spec: BinSpec) -> SequenceArrays:
    """Bin every sample's window (observations at the window's end fall in the last bin).

    Raises:
        DataError: there are no samples, or a sample holds a variable the spec lacks.
    """
    if not samples:
        raise DataError("no samples to bin: the cohort gave no stay for this task.")
    n, t, v = len(samples), spec.bins, len(spec.variables)
    index = {name: j for j, name in enumerate(spec.variables)}
    logs = np.array([name in spec.log_variables for name in spec.variables])
    values = np.full((n, t, v), np.nan, dtype=np.float32)
    counts = np.zeros((n, v), dtype=np.int32)
    slopes = np.full((n, v), np.nan, dtype=np.float32)
    step = timedelta(hours=spec.bin_hours)
    for i, sample in enumerate(samples):
        times: list[list[float]] = [[] for _ in range(v)]
        observed: list[list[float]] = [[] for _ in range(v)]
        for m in sample.measurements:
            name = m.code.code
            if name not in index:
                raise DataError(
                    f"stay {sample.patient_id}: variable {name!r} is not an input of this model."
                )
            j = index[name]
            b = min(int((m.time - sample.window_start) / step), t - 1)
            previous = values[i, b, j]
            summed = name in _SUMMED and not np.isnan(previous)
            values[i, b, j] = previous + m.value if summed else m.value
            times[j].append((m.time - sample.window_start) / timedelta(hours=1))
            observed[j].append(float(np.log1p(m.value)) if logs[j] else m.value)
        for j in range(v):
            counts[i, j] = len(times[j])
            if len(times[j]) >= 2 and np.ptp(times[j]) > 0:
                slopes[i, j] = np.polyfit(times[j], observed[j], 1)[0]
    values[:, :, logs] = np.log1p(values[:, :, logs])
    return SequenceArrays(
        values=values,
        static=np.array([_static_row(s) for s in samples], dtype=np.float32),
        labels=np.array([-1 if s.label is None else s.label for s in samples], dtype=np.int64),
        patient_ids=np.array([s.patient_id for s in samples]),
        sex=np.array([s.sex or "missing" for s in samples]),
        age=np.array([np.nan if s.age is None else s.age for s in samples], dtype=np.float64),
        saps1=np.array([s.baseline_scores.get("saps1", np.nan) for s in samples]),
        counts=counts,
        slopes=slopes,
    )


@dataclass(frozen=True)
class ModelInputs:
    """Float32 arrays a sequence network reads: (N, T, V) x, mask, delta and (N, S) static."""

    x: NDArray[np.float32]
    mask: NDArray[np.float32]
    delta: NDArray[np.float32]
    static: NDArray[np.float32]

    def __len__(self) -> int:
        return len(self.x)

    def batch(self, index: NDArray[np.int64]) -> tuple[torch.Tensor, ...]:
        """The network's inputs (x, mask, delta, static) of the stays in `index`."""
        return tuple(
            torch.from_numpy(np.ascontiguousarray(a[index]))
            for a in (self.x, self.mask, self.delta, self.static)
        )


@dataclass(frozen=True)
class Standardiser:
    """Per-variable and per-descriptor mean and standard deviation of the training split."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    static_mean: tuple[float, ...]
    static_std: tuple[float, ...]

    @classmethod
    def fit(cls, arrays: SequenceArrays) -> Standardiser:
        """Fitted on observed values only (a variable never observed: mean 0, sd 1)."""
        flat = arrays.values.reshape(-1, arrays.values.shape[2]).astype(np.float64)
        mean, std = _moments(flat)
        static_mean, static_std = _moments(arrays.static.astype(np.float64))
        return cls(tuple(mean), tuple(std), tuple(static_mean), tuple(static_std))

    def transform(self, arrays: SequenceArrays, bin_hours: float = 1.0) -> ModelInputs:
        """Standardised values (0 where missing), mask, scaled delta, standardised static."""
        observed = ~np.isnan(arrays.values)
        scaled = (arrays.values - np.asarray(self.mean, np.float32)) / np.asarray(
            self.std, np.float32
        )
        x: NDArray[np.float32] = np.asarray(np.where(observed, scaled, 0.0), dtype=np.float32)
        n, t, v = x.shape
        delta = np.zeros((n, t, v), dtype=np.float32)
        for step in range(1, t):
            delta[:, step] = bin_hours + np.where(observed[:, step - 1], 0.0, delta[:, step - 1])
        raw = (arrays.static - np.asarray(self.static_mean, np.float32)) / np.asarray(
            self.static_std, np.float32
        )
        static: NDArray[np.float32] = np.asarray(np.nan_to_num(raw, nan=0.0), dtype=np.float32)
        return ModelInputs(x, observed.astype(np.float32), delta / (t * bin_hours), static)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean": list(self.mean), "std": list(self.std),
            "static_mean": list(self.static_mean), "static_std": list(self.static_std),
        }  # fmt: skip

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Standardiser:
        return cls(
            tuple(raw["mean"]), tuple(raw["std"]),
            tuple(raw["static_mean"]), tuple(raw["static_std"]),
        )  # fmt: skip


def _moments(values: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    observed = ~np.isnan(values)
    count = observed.sum(axis=0)
    total = np.where(observed, values, 0.0).sum(axis=0)
    mean = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    squares = np.where(observed, (values - mean) ** 2, 0.0).sum(axis=0)
    var = np.divide(squares, count, out=np.ones_like(total), where=count > 1)
    std = np.sqrt(var)
    return mean, np.where(std > 1e-6, std, 1.0)
