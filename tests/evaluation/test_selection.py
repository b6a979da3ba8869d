"""Calibration and decision rule chosen on validation: cross-fitted, 'none' kept when no
method helps, prior correction for imbalanced data, the stored forms."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from clinsight.data.medmnist import TaskType
from clinsight.errors import DataError
from clinsight.evaluation.calibration import expected_calibration_error
from clinsight.evaluation.selection import (
    Calibrator,
    DecisionRule,
    choose_calibration,
    choose_decision_rule,
)


def _calibrated(
    seed: int, n: int = 300, k: int = 3
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Logits whose softmax is the true class distribution each label is drawn from."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, k)) * 1.5
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return logits, np.array([rng.choice(k, p=row) for row in p])


@pytest.mark.parametrize("seed", [0, 2, 3])
def test_already_calibrated_logits_keep_no_calibration(seed: int) -> None:
    logits, y = _calibrated(seed)
    calibrator, out_of_fold = choose_calibration(logits, y, TaskType.MULTI_CLASS)
    assert calibrator.method == "none"
    assert calibrator.temperature == 1.0
    ece, nll = calibrator.evidence["ece"], calibrator.evidence["nll"]
    assert not any(ece[m] < ece["none"] and nll[m] < nll["none"] for m in ("temperature", "vector"))
    np.testing.assert_allclose(calibrator.probabilities(logits, TaskType.MULTI_CLASS).sum(1), 1)
    assert out_of_fold.shape == logits.shape


def test_overconfident_logits_are_calibrated_out_of_fold() -> None:
    logits, y = _calibrated(0)
    calibrator, out_of_fold = choose_calibration(4 * logits, y, TaskType.MULTI_CLASS)
    assert calibrator.method == "temperature"
    assert calibrator.temperature == pytest.approx(4.0, rel=0.25)
    ece = calibrator.evidence["ece"]
    assert ece["temperature"] < ece["none"] / 2
    assert expected_calibration_error(y, out_of_fold, TaskType.MULTI_CLASS) == ece["temperature"]


def test_vector_scaling_corrects_a_shifted_class() -> None:
    logits, y = _calibrated(1, n=400)
    shifted = logits + np.array([2.0, 0.0, 0.0])  # class 0 over-predicted: a prior error
    calibrator, _ = choose_calibration(shifted, y, TaskType.MULTI_CLASS)
    assert calibrator.method == "vector"
    assert calibrator.bias[0] - np.mean(calibrator.bias[1:]) == pytest.approx(-2.0, abs=0.5)


def test_calibrators_round_trip_and_refuse_malformed_forms() -> None:
    logits, y = _calibrated(1, n=400)
    calibrator, _ = choose_calibration(logits + np.array([2.0, 0.0, 0.0]), y, TaskType.MULTI_CLASS)
    assert Calibrator.from_dict(calibrator.to_dict()) == calibrator
    with pytest.raises(DataError, match="Unknown or incomplete calibration method 'platt'"):
        Calibrator.from_dict({"method": "platt"})
    with pytest.raises(DataError, match="Unknown or incomplete calibration method 'vector'"):
        Calibrator.from_dict({"method": "vector"})
    with pytest.raises(DataError, match="at least 4 validation cases"):
        choose_calibration(logits[:3], y[:3], TaskType.MULTI_CLASS)


def test_imbalanced_binary_data_chooses_the_prior_corrected_threshold() -> None:
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(90, dtype=np.int64), np.ones(10, dtype=np.int64)]
    p1 = 1 / (1 + np.exp(-(rng.normal(size=100) + 1.2 * y - 2.5)))
    train = np.r_[np.zeros(900), np.ones(100)].astype(np.int64)
    rule = choose_decision_rule(np.c_[1 - p1, p1], y, train, TaskType.BINARY)
    assert rule.name == "prior-corrected"
    assert rule.threshold == pytest.approx(101 / 1002)  # smoothed positive training share
    scores = rule.evidence["scores"]
    assert scores["prior-corrected"]["balanced_accuracy"] > scores["argmax"]["balanced_accuracy"]
    assert DecisionRule.from_dict(rule.to_dict()) == rule


def test_balanced_data_keeps_the_argmax() -> None:
    logits, y = _calibrated(0, k=3)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    rule = choose_decision_rule(probs, y, np.arange(300) % 3, TaskType.MULTI_CLASS)
    assert rule.name == "argmax"  # equal priors: the prior correction changes nothing
    assert set(rule.evidence["scores"]) == {"argmax", "prior-corrected"}


def test_ordinal_rules_include_the_median_grade_and_use_qwk() -> None:
    probs = np.array([[0.4, 0.0, 0.0, 0.6], [0.3, 0.3, 0.4, 0.0], [0.1, 0.2, 0.3, 0.4]])
    assert DecisionRule("median").predict(probs).tolist() == [3, 1, 2]
    assert DecisionRule("argmax").predict(probs).tolist() == [3, 2, 3]
    y = np.array([3, 1, 2])
    rule = choose_decision_rule(probs, y, np.array([0, 1, 2, 3]), TaskType.ORDINAL)
    assert rule.name == "median"
    assert rule.evidence["scores"]["median"]["qwk"] == 1.0
    assert rule.evidence["criterion"].startswith("validation qwk")
    with pytest.raises(DataError, match="Unknown or incomplete decision rule 'prior-corrected'"):
        DecisionRule.from_dict({"name": "prior-corrected", "priors": [0.5, 0.0]})
