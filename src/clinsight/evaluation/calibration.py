"""Probability calibration: temperature and vector scaling, expected calibration error, Brier.

Temperature scaling (Guo et al., 2017) divides the logits by one scalar T fitted on the
validation split, never on the test split. It changes how confident the probabilities are
but not which class ranks first, so accuracy and AUC stay as they were. Vector scaling (the
same paper) fits a scale and a bias per class: it can also correct a class's prior, so it
may change which class ranks first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize, minimize_scalar
from scipy.special import expit, log_expit, log_softmax, softmax

from clinsight.data.medmnist import TaskType
from clinsight.errors import DataError
from clinsight.evaluation.metrics import check_predictions, json_float

__all__ = [
    "ReliabilityBins",
    "apply_temperature",
    "apply_vector_scaling",
    "brier_score",
    "expected_calibration_error",
    "fit_temperature",
    "fit_vector_scaling",
    "reliability_bins",
]

_LOG_T_BOUNDS = (math.log(1e-2), math.log(1e2))


def _negative_log_likelihood(
    logits: NDArray[np.float64], y: NDArray[np.int64], task: TaskType, temperature: float
) -> float:
    scaled = logits / temperature
    if task == TaskType.MULTI_LABEL:
        return float(-np.mean(np.where(y == 1, log_expit(scaled), log_expit(-scaled))))
    return float(-np.mean(log_softmax(scaled, axis=1)[np.arange(len(y)), y]))


def fit_temperature(logits_val: ArrayLike, y_val: ArrayLike, task: TaskType) -> float:
    """The temperature T > 0 that minimises the validation negative log-likelihood.

    Softmax over the logits for single-label tasks (binary needs two logits); for multi-label
    tasks one T is shared by the per-label sigmoids. T is searched in [0.01, 100] on a log
    scale, so logits that carry no signal end near T = 100 (near-uniform probabilities).

    Raises:
        DataError: the logits and labels are malformed.
    """
    y, logits = check_predictions(y_val, logits_val, task)
    result = minimize_scalar(
        lambda log_t: _negative_log_likelihood(logits, y, task, math.exp(log_t)),
        bounds=_LOG_T_BOUNDS,
        method="bounded",
        options={"xatol": 1e-7},
    )
    return math.exp(float(result.x))


def apply_temperature(logits: ArrayLike, temperature: float, task: TaskType) -> NDArray[np.float64]:
    """Probabilities from logits divided by `temperature`: softmax, or sigmoid for multi-label.

    Raises:
        DataError: the logits are not a finite (N, K) array or the temperature is not positive.
    """
    values = np.asarray(logits, dtype=np.float64)
    if values.ndim != 2 or not np.all(np.isfinite(values)):
        raise DataError(f"Logits must be a finite (N, K) array; got shape {values.shape}.")
    if not temperature > 0 or not math.isfinite(temperature):
        raise DataError(f"The temperature must be a positive number; got {temperature}.")
    scaled = values / temperature
    if task == TaskType.MULTI_LABEL:
        return np.asarray(expit(scaled), dtype=np.float64)
    return np.asarray(softmax(scaled, axis=1), dtype=np.float64)


_VECTOR_RIDGE = 1e-3  # keeps the biases (and the scales near 1) identifiable on small splits


def fit_vector_scaling(
    logits_val: ArrayLike, y_val: ArrayLike, task: TaskType
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per-class scales w and biases b minimising the validation negative log-likelihood of
    softmax(w * logits + b), with a small ridge on b and w - 1 (single-label tasks only).

    Raises:
        DataError: the logits and labels are malformed, or the task is multi-label.
    """
    if task == TaskType.MULTI_LABEL:
        raise DataError("Vector scaling is for single-label tasks; use temperature scaling.")
    y, logits = check_predictions(y_val, logits_val, task)
    n, k = logits.shape
    one_hot = (y[:, None] == np.arange(k)).astype(np.float64)

    def loss(params: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        w, b = params[:k], params[k:]
        scaled = logits * w + b
        log_p = log_softmax(scaled, axis=1)
        residual = (np.exp(log_p) - one_hot) / n
        penalty = _VECTOR_RIDGE * (np.sum((w - 1) ** 2) + np.sum(b**2))
        grad = np.r_[(residual * logits).sum(axis=0) + 2 * _VECTOR_RIDGE * (w - 1),
                     residual.sum(axis=0) + 2 * _VECTOR_RIDGE * b]  # fmt: skip
        return float(-np.mean((log_p * one_hot).sum(axis=1)) + penalty), grad

    start = np.r_[np.full(k, 1.0 / fit_temperature(logits, y, task)), np.zeros(k)]
    result = minimize(loss, start, jac=True, method="L-BFGS-B")
    return np.asarray(result.x[:k], dtype=np.float64), np.asarray(result.x[k:], dtype=np.float64)


def apply_vector_scaling(
    logits: ArrayLike, scale: ArrayLike, bias: ArrayLike
) -> NDArray[np.float64]:
    """Probabilities softmax(scale * logits + bias) of a single-label model.

    Raises:
        DataError: the logits are not a finite (N, K) array or the parameters are not K numbers.
    """
    values = np.asarray(logits, dtype=np.float64)
    w, b = np.asarray(scale, dtype=np.float64), np.asarray(bias, dtype=np.float64)
    if values.ndim != 2 or not np.all(np.isfinite(values)):
        raise DataError(f"Logits must be a finite (N, K) array; got shape {values.shape}.")
    if w.shape != (values.shape[1],) or b.shape != w.shape:
        raise DataError(f"Vector scaling needs {values.shape[1]} scales and biases.")
    return np.asarray(softmax(values * w + b, axis=1), dtype=np.float64)


@dataclass(frozen=True)
class ReliabilityBins:
    """Per-bin data of a reliability diagram and the expected calibration error it yields.

    Bin i covers confidences in (edges[i], edges[i+1]] (the first bin also holds 0). An empty
    bin has NaN confidence and accuracy.
    """

    edges: list[float]
    counts: list[int]
    confidence: list[float]
    accuracy: list[float]
    ece: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (NaN becomes None)."""
        return {
            "edges": list(self.edges),
            "counts": list(self.counts),
            "confidence": [json_float(v) for v in self.confidence],
            "accuracy": [json_float(v) for v in self.accuracy],
            "ece": self.ece,
        }


def _confidence_and_correct(
    y: NDArray[np.int64], probs: NDArray[np.float64], task: TaskType
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    if task == TaskType.MULTI_LABEL:
        flat_p, flat_y = probs.ravel(), y.ravel()
        predicted = flat_p >= 0.5
        return np.where(predicted, flat_p, 1.0 - flat_p), (predicted == flat_y).astype(np.float64)
    return probs.max(axis=1), (probs.argmax(axis=1) == y).astype(np.float64)


def reliability_bins(
    y_true: ArrayLike, probs: ArrayLike, task: TaskType, n_bins: int = 15
) -> ReliabilityBins:
    """Top-class confidence against accuracy in `n_bins` equal-width bins, and the ECE.

    Binary, multi-class and ordinal: the confidence is the largest class probability and a case
    is correct when that class is the true one. Multi-label: every (case, label) pair is a
    binary decision at 0.5 with confidence max(p, 1 - p). ECE = sum over bins of
    (bin count / total) * |accuracy - mean confidence|.

    Raises:
        DataError: the inputs are malformed or `n_bins` < 1.
    """
    if n_bins < 1:
        raise DataError(f"n_bins must be at least 1; got {n_bins}.")
    y, p = check_predictions(y_true, probs, task)
    if p.min() < 0.0 or p.max() > 1.0:
        raise DataError("Probabilities must lie in [0, 1]; pass probabilities, not logits.")
    confidence, correct = _confidence_and_correct(y, p, task)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.digitize(confidence, edges[1:-1], right=True)
    counts = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(index, confidence, minlength=n_bins) / counts
        accuracy = np.bincount(index, correct, minlength=n_bins) / counts
    gaps = np.where(counts > 0, np.abs(accuracy - mean_conf), 0.0)
    return ReliabilityBins(
        edges=edges.tolist(),
        counts=counts.tolist(),
        confidence=mean_conf.tolist(),
        accuracy=accuracy.tolist(),
        ece=float((counts * gaps).sum() / counts.sum()),
    )


def expected_calibration_error(
    y_true: ArrayLike, probs: ArrayLike, task: TaskType, n_bins: int = 15
) -> float:
    """The ECE of `reliability_bins` (15 equal-width bins on the top-class confidence).

    Raises:
        DataError: see `reliability_bins`.
    """
    return reliability_bins(y_true, probs, task, n_bins).ece


def brier_score(y_true: ArrayLike, probs: ArrayLike, task: TaskType) -> float:
    """Mean squared error of the probabilities against the outcomes.

    Binary: (P(class 1) - y)^2 averaged over cases, range [0, 1] (scikit-learn's convention).
    Multi-class and ordinal: the squared distance to the one-hot label summed over classes,
    averaged over cases, range [0, 2]. Multi-label: averaged over all (case, label) pairs.

    Raises:
        DataError: the inputs are malformed.
    """
    y, p = check_predictions(y_true, probs, task)
    if task == TaskType.MULTI_LABEL:
        return float(np.mean((p - y) ** 2))
    if task == TaskType.BINARY:
        return float(np.mean((p[:, 1] - y) ** 2))
    one_hot = y[:, None] == np.arange(p.shape[1])
    return float(np.mean(((p - one_hot) ** 2).sum(axis=1)))
