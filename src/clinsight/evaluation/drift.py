"""Input and output drift against a model's validation baseline: histograms and the
population stability index (PSI).

The baseline is a small JSON saved with each image model at training: for the validation
split, the count, predicted-positive rate and indeterminate share, and histograms (explicit
bin edges and counts) of the calibrated positive probability and of the image's mean
intensity. PSI = Σ (a - e) ln(a / e) over the bins, with the shares floored at 1e-4 so an
empty bin stays finite; above 0.2 the population is conventionally said to have shifted.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from clinsight.errors import DataError

__all__ = [
    "DRIFT_PSI",
    "FEATURES",
    "Baseline",
    "Histogram",
    "build_baseline",
    "population_stability_index",
]

DRIFT_PSI = 0.2
FEATURES = ("positive_probability", "mean_intensity")
_BINS = 10
_FLOOR = 1e-4


@dataclass(frozen=True)
class Histogram:
    """Counts of values in the bins [edges[i], edges[i+1]) (the last bin closed)."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]

    @classmethod
    def of(cls, values: ArrayLike, edges: Sequence[float]) -> Histogram:
        """The histogram of `values` on `edges` (values outside go to the end bins)."""
        bounds = np.asarray(edges, dtype=np.float64)
        data = np.clip(np.asarray(values, dtype=np.float64).ravel(), bounds[0], bounds[-1])
        counts, _ = np.histogram(data, bins=bounds)
        return cls(tuple(float(e) for e in bounds), tuple(int(c) for c in counts))

    def shares(self) -> list[float]:
        """Each bin's share of the values (zeros when empty)."""
        total = sum(self.counts)
        return [c / total if total else 0.0 for c in self.counts]

    def mapped(self, edge: Callable[[float], float]) -> Histogram:
        """The same counts on edges passed through a strictly increasing function."""
        return Histogram(tuple(edge(e) for e in self.edges), self.counts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"edges": list(self.edges), "counts": list(self.counts)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Histogram:
        """Read the stored form.

        Raises:
            DataError: the edges are not increasing or do not fit the counts.
        """
        edges = tuple(float(e) for e in data["edges"])
        counts = tuple(int(c) for c in data["counts"])
        if len(edges) != len(counts) + 1 or any(b <= a for a, b in itertools.pairwise(edges)):
            raise DataError("A histogram needs increasing edges, one more than its counts.")
        return cls(edges, counts)


def population_stability_index(expected: Histogram, actual_values: ArrayLike) -> float:
    """The PSI of `actual_values` against the `expected` histogram, on its bins.

    Raises:
        DataError: there are no actual values or the baseline is empty.
    """
    actual = Histogram.of(actual_values, expected.edges)
    if not sum(actual.counts) or not sum(expected.counts):
        raise DataError("The PSI needs values on both sides.")
    total = 0.0
    for e, a in zip(expected.shares(), actual.shares(), strict=True):
        e, a = max(e, _FLOOR), max(a, _FLOOR)
        total += (a - e) * math.log(a / e)
    return total


@dataclass(frozen=True)
class Baseline:
    """A model's validation statistics (see the module)."""

    n: int
    predicted_positive_rate: float
    indeterminate_share: float | None
    mean: dict[str, float]
    histograms: dict[str, Histogram]
    split: str = "validation"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (baseline.json)."""
        return {
            "split": self.split, "n": self.n,
            "predicted_positive_rate": self.predicted_positive_rate,
            "indeterminate_share": self.indeterminate_share, "mean": self.mean,
            "histograms": {k: h.to_dict() for k, h in self.histograms.items()},
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Baseline:
        """Read baseline.json.

        Raises:
            DataError: a field is missing or malformed.
        """
        try:
            share = data.get("indeterminate_share")
            return cls(
                n=int(data["n"]),
                predicted_positive_rate=float(data["predicted_positive_rate"]),
                indeterminate_share=None if share is None else float(share),
                mean={k: float(v) for k, v in data["mean"].items()},
                histograms={k: Histogram.from_dict(v) for k, v in data["histograms"].items()},
                split=str(data.get("split", "validation")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"Malformed baseline: {exc}") from exc


def _quantile_edges(values: np.ndarray[Any, Any], low: float, high: float) -> list[float]:
    """Ten bins holding about a tenth of `values` each, spanning [low, high]."""
    inner = np.unique(np.quantile(values, np.linspace(0, 1, _BINS + 1)[1:-1]))
    inner = inner[(inner > low) & (inner < high)]
    return [low, *(float(e) for e in inner), high]


def build_baseline(
    positive_probability: ArrayLike,
    mean_intensity: ArrayLike,
    decisions: Sequence[str],
    *,
    positive_label: str,
    indeterminate: str | None,
) -> Baseline:
    """The baseline of a validation split: its calibrated positive probabilities, the mean
    intensity of each image in [0, 1], and each case's finding. Bins are the validation
    deciles, so each holds about a tenth of the baseline (the most sensitive PSI bins).

    Raises:
        DataError: the arrays are empty or differ in length.
    """
    probs = np.asarray(positive_probability, dtype=np.float64).ravel()
    means = np.asarray(mean_intensity, dtype=np.float64).ravel()
    if not len(probs) or len(probs) != len(means) or len(probs) != len(decisions):
        raise DataError("A baseline needs one probability, intensity and finding per case.")
    found = np.asarray(decisions)
    share = None if indeterminate is None else float(np.mean(found == indeterminate))
    return Baseline(
        n=len(probs),
        predicted_positive_rate=float(np.mean(found == positive_label)),
        indeterminate_share=share,
        mean={"positive_probability": float(probs.mean()), "mean_intensity": float(means.mean())},
        histograms={
            "positive_probability": Histogram.of(probs, _quantile_edges(probs, 0.0, 1.0)),
            "mean_intensity": Histogram.of(means, _quantile_edges(means, 0.0, 1.0)),
        },
    )
