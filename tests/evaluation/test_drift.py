"""Drift: histograms on validation deciles, the PSI, and the baseline's stored form."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clinsight.errors import DataError
from clinsight.evaluation.drift import (
    Baseline,
    Histogram,
    build_baseline,
    population_stability_index,
)


def test_the_psi_is_zero_for_the_same_shares_and_follows_its_formula() -> None:
    expected = Histogram((0.0, 0.5, 1.0), (50, 50))
    assert population_stability_index(expected, [0.2, 0.7]) == 0.0
    # 90 % / 10 % against 50 % / 50 %: (0.9-0.5) ln(1.8) + (0.1-0.5) ln(0.2)
    shifted = [0.2] * 9 + [0.7]
    value = population_stability_index(expected, shifted)
    assert value == pytest.approx(0.4 * math.log(1.8) - 0.4 * math.log(0.2))
    assert value > 0.2
    # An empty bin is floored at 1e-4, so the index stays finite.
    assert population_stability_index(expected, [0.1, 0.2]) == pytest.approx(
        (1 - 0.5) * math.log(1 / 0.5) + (1e-4 - 0.5) * math.log(1e-4 / 0.5)
    )
    with pytest.raises(DataError, match="needs values on both sides"):
        population_stability_index(expected, [])


def test_values_outside_the_edges_fall_in_the_end_bins() -> None:
    assert Histogram.of([-1.0, 0.5, 2.0], [0.0, 0.5, 1.0]).counts == (1, 2)


def test_a_baseline_bins_by_validation_deciles_and_round_trips() -> None:
    probs = np.linspace(0.0, 1.0, 101)
    decisions = ["b" if p >= 0.7 else "a" if p < 0.3 else "indeterminate" for p in probs]
    baseline = build_baseline(probs, probs / 2, decisions, positive_label="b",
                              indeterminate="indeterminate")  # fmt: skip
    histogram = baseline.histograms["positive_probability"]
    assert histogram.edges[0] == 0.0
    assert histogram.edges[-1] == 1.0
    assert len(histogram.counts) == 10
    assert all(9 <= count <= 11 for count in histogram.counts)  # about a tenth of 101 in each
    assert baseline.predicted_positive_rate == pytest.approx(31 / 101)
    assert baseline.indeterminate_share == pytest.approx(40 / 101)
    assert baseline.mean == pytest.approx({"positive_probability": 0.5, "mean_intensity": 0.25})
    assert Baseline.from_dict(baseline.to_dict()) == baseline
    assert population_stability_index(histogram, probs) == pytest.approx(0.0)
    with pytest.raises(DataError, match="Malformed baseline"):
        Baseline.from_dict({"n": 3})
    with pytest.raises(DataError, match="increasing edges"):
        Histogram.from_dict({"edges": [0.0, 0.0], "counts": [1]})


def test_mapped_edges_keep_the_counts() -> None:
    histogram = Histogram((0.0, 0.25, 1.0), (3, 4))
    assert histogram.mapped(lambda e: e**2) == Histogram((0.0, 0.0625, 1.0), (3, 4))
