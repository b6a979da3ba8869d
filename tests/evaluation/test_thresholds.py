"""Decision thresholds chosen on (synthetic) validation scores."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clinsight.errors import DataError
from clinsight.evaluation.thresholds import INDETERMINATE, DecisionThresholds, choose_thresholds


def _scores(negatives: list[float], positives: list[float]) -> tuple[np.ndarray, np.ndarray]:
    return np.array(negatives + positives), np.array([0] * len(negatives) + [1] * len(positives))


def test_overlapping_scores_give_a_band_with_the_exact_cut_offs() -> None:
    # Negatives 0.01..0.20, positives 0.11..0.30: 19 of 20 needed on each side.
    p, y = _scores([i / 100 for i in range(1, 21)], [i / 100 for i in range(11, 31)])
    found = choose_thresholds(p, y)
    assert found == DecisionThresholds(
        low=12 / 100, high=20 / 100, sensitivity=0.95, specificity=0.95,
        sensitivity_target=0.95, specificity_target=0.95, indeterminate_fraction=16 / 40,
        n_positive=20, n_negative=20,
    )  # fmt: skip
    assert found.has_band
    decide = [found.decide(v, "pneumonia", "normal") for v in (0.2, 0.1999, 0.12, 0.1199)]
    assert decide == ["pneumonia", INDETERMINATE, INDETERMINATE, "normal"]
    assert DecisionThresholds.from_dict(found.to_dict()) == found


def test_separated_scores_give_no_band_and_one_cut() -> None:
    negatives = [i / 100 for i in range(20)]  # 0.00..0.19
    positives = [0.5 + i / 100 for i in range(20)]  # 0.50..0.69
    found = choose_thresholds(*_scores(negatives, positives))
    assert (found.low, found.high) == (0.5 + 1 / 100, 19 / 100)
    assert (found.sensitivity, found.specificity, found.indeterminate_fraction) == (0.95, 0.95, 0)
    assert not found.has_band
    assert [found.decide(v, "pos", "neg") for v in (0.19, 0.185, 0.3)] == ["pos", "neg", "pos"]


def test_targets_and_a_cut_above_every_score() -> None:
    found = choose_thresholds([0.9, 0.1], [0, 1], sensitivity_target=1.0, specificity_target=1.0)
    assert (found.low, found.high) == (0.1, math.nextafter(0.9, math.inf))
    assert (found.sensitivity, found.specificity, found.indeterminate_fraction) == (1, 1, 1)
    assert found.decide(0.9, "pos", "neg") == INDETERMINATE


@pytest.mark.parametrize(
    ("p", "y", "target"),
    [([0.2, 0.3], [0, 0], 0.95), ([0.2], [0, 1], 0.95), ([0.2, 1.5], [0, 1], 0.95),
     ([0.2, 0.3], [0, 1], 0.0)],
)  # fmt: skip
def test_malformed_inputs_are_refused(p: list[float], y: list[int], target: float) -> None:
    with pytest.raises(DataError):
        choose_thresholds(p, y, sensitivity_target=target)


def test_a_malformed_stored_band_is_refused() -> None:
    with pytest.raises(DataError, match="Malformed decision thresholds"):
        DecisionThresholds.from_dict({"low": 0.1})
