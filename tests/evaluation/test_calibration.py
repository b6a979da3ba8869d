"""Temperature scaling on synthetic logits with a known temperature; ECE and Brier by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy.special import expit, softmax
from sklearn.metrics import brier_score_loss

from clinsight.data.medmnist import TaskType
from clinsight.errors import DataError
from clinsight.evaluation.calibration import (
    apply_temperature,
    brier_score,
    expected_calibration_error,
    fit_temperature,
    reliability_bins,
)


def _sample_classes(logits: NDArray[np.float64], rng: np.random.Generator) -> NDArray[np.int64]:
    """Labels drawn from softmax(logits): the logits are calibrated by construction."""
    cumulative = np.cumsum(softmax(logits, axis=1), axis=1)
    labels: NDArray[np.int64] = (rng.random((len(logits), 1)) > cumulative).sum(axis=1)
    return labels


@pytest.mark.parametrize(("task", "k"), [(TaskType.BINARY, 2), (TaskType.MULTI_CLASS, 4)])
def test_fit_temperature_recovers_overconfidence(task: TaskType, k: int) -> None:
    rng = np.random.default_rng(0)
    logits = 1.5 * rng.normal(size=(20_000, k))
    y = _sample_classes(logits, rng)
    assert fit_temperature(3.0 * logits, y, task) == pytest.approx(3.0, rel=0.05)
    assert fit_temperature(0.5 * logits, y, task) == pytest.approx(0.5, rel=0.05)
    assert fit_temperature(logits, y, task) == pytest.approx(1.0, rel=0.05)


def test_fit_temperature_multilabel_shares_one_temperature() -> None:
    rng = np.random.default_rng(1)
    logits = 2.0 * rng.normal(size=(5_000, 6))
    y = (rng.random(logits.shape) < expit(logits)).astype(int)
    assert fit_temperature(3.0 * logits, y, TaskType.MULTI_LABEL) == pytest.approx(3.0, rel=0.05)


def test_fit_temperature_without_signal_goes_to_the_bound() -> None:
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(400, 2))
    y = rng.integers(0, 2, 400)
    logits[np.arange(400), 1 - y] += 3.0  # confidently wrong
    assert fit_temperature(logits, y, TaskType.BINARY) == pytest.approx(100.0, rel=1e-3)


def test_apply_temperature() -> None:
    logits = np.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    probs = apply_temperature(logits, 2.0, TaskType.MULTI_CLASS)
    e = np.exp([1.0, 0.0, -0.5])
    np.testing.assert_allclose(probs[0], e / e.sum(), rtol=0, atol=1e-15)
    np.testing.assert_allclose(probs[1], [1 / 3] * 3, rtol=0, atol=1e-15)
    sig = apply_temperature(np.array([[2.0, -4.0]]), 2.0, TaskType.MULTI_LABEL)
    np.testing.assert_allclose(sig, [[1 / (1 + np.exp(-1.0)), 1 / (1 + np.exp(2.0))]], atol=1e-15)


@pytest.mark.parametrize(
    ("logits", "temperature", "match"),
    [
        (np.zeros((2, 2)), 0.0, "positive number"),
        (np.zeros((2, 2)), float("nan"), "positive number"),
        (np.array([[np.inf, 0.0]]), 1.0, r"finite \(N, K\) array"),
        (np.zeros(3), 1.0, r"finite \(N, K\) array"),
    ],
)
def test_apply_temperature_rejects_bad_input(
    logits: NDArray[np.float64], temperature: float, match: str
) -> None:
    with pytest.raises(DataError, match=match):
        apply_temperature(logits, temperature, TaskType.BINARY)


def test_ece_matches_hand_computation() -> None:
    # Top-class confidences 0.9 (right), 0.82 (wrong), 0.65 (right), 0.62 (right), 0.95 (right)
    # fall in 15-wide bins 13, 12, 9, 9, 14:
    # ECE = (2 * |1 - 0.635| + |0 - 0.82| + |1 - 0.9| + |1 - 0.95|) / 5 = 0.34.
    probs = np.array([[0.1, 0.9], [0.18, 0.82], [0.35, 0.65], [0.62, 0.38], [0.05, 0.95]])
    y = np.array([1, 0, 1, 0, 1])
    bins = reliability_bins(y, probs, TaskType.BINARY)
    assert bins.ece == pytest.approx(0.34, abs=1e-12)
    assert expected_calibration_error(y, probs, TaskType.BINARY) == bins.ece
    assert bins.counts == [0] * 9 + [2, 0, 0, 1, 1, 1]
    assert bins.confidence[9] == pytest.approx(0.635)
    assert all(np.isnan(bins.accuracy[i]) and np.isnan(bins.confidence[i]) for i in (0, 10, 11))
    assert [bins.accuracy[i] for i in (9, 12, 13, 14)] == [1.0, 0.0, 1.0, 1.0]
    assert len(bins.edges) == 16
    assert bins.edges[0] == 0.0
    assert bins.edges[-1] == 1.0
    assert json.dumps(bins.to_dict(), allow_nan=False)


def test_ece_one_bin_is_gap_of_means() -> None:
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.3, 0.3, 0.4]])
    y = np.array([0, 2, 2])
    # mean confidence (0.7 + 0.6 + 0.4) / 3, accuracy 2 / 3
    ece = expected_calibration_error(y, probs, TaskType.MULTI_CLASS, n_bins=1)
    assert ece == pytest.approx(abs(2 / 3 - 1.7 / 3), abs=1e-12)


def test_ece_multilabel_treats_each_label_as_binary_decision() -> None:
    probs = np.array([[0.9, 0.2], [0.3, 0.6]])
    y = np.array([[1, 1], [0, 1]])
    # Decisions: 0.9 right, 0.8 (no) wrong, 0.7 (no) right, 0.6 right; n_bins=2 puts all in bin 1.
    ece = expected_calibration_error(y, probs, TaskType.MULTI_LABEL, n_bins=2)
    assert ece == pytest.approx(abs(3 / 4 - 0.75), abs=1e-12)
    bins = reliability_bins(y, probs, TaskType.MULTI_LABEL, n_bins=2)
    assert bins.counts == [0, 4]


def test_reliability_rejects_bad_input() -> None:
    with pytest.raises(DataError, match="n_bins must be at least 1"):
        reliability_bins([0], [[0.5, 0.5]], TaskType.BINARY, n_bins=0)
    with pytest.raises(DataError, match="pass probabilities, not logits"):
        reliability_bins([0], [[2.0, -1.0]], TaskType.BINARY)


def test_brier_score() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 50)
    p1 = rng.random(50)
    probs = np.c_[1 - p1, p1]
    expected = brier_score_loss(y, p1)
    assert brier_score(y, probs, TaskType.BINARY) == pytest.approx(expected, abs=1e-12)
    multi = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]])
    # (0.09 + 0.04 + 0.01 + 0.01 + 0.36 + 0.49) / 2
    assert brier_score([0, 2], multi, TaskType.MULTI_CLASS) == pytest.approx(0.5, abs=1e-12)
    labels = np.array([[1, 0], [0, 1]])
    ml = np.array([[0.9, 0.2], [0.4, 0.5]])
    expected_ml = (0.01 + 0.04 + 0.16 + 0.25) / 4
    assert brier_score(labels, ml, TaskType.MULTI_LABEL) == pytest.approx(expected_ml, abs=1e-12)
