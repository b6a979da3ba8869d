"""Metrics of a binary risk over time (in-hospital death, onset of a condition): AUROC,
AUPRC, Brier and ECE with bootstrap percentile intervals, and the subgroups by sex and age
band; recall@k and precision@k of ranked next-visit diagnoses. Where a patient gives
several samples, the bootstrap resamples patients.

AUROC is `metrics.roc_auc`; AUPRC is average precision (the step-wise area, as
scikit-learn computes it); Brier and ECE are `calibration.brier_score` and the project's
15-bin top-class `expected_calibration_error`. Every bootstrap replicate resamples the
stays (`metrics.bootstrap_weights`), the same replicates for every metric.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import average_precision_score

from clinsight.data.medmnist import TaskType
from clinsight.errors import DataError
from clinsight.evaluation.calibration import (
    brier_score,
    expected_calibration_error,
    fit_temperature,
)
from clinsight.evaluation.metrics import (
    bootstrap_weights,
    cluster_bootstrap_weights,
    json_float,
    percentile_interval,
    roc_auc,
)
from clinsight.evaluation.subgroups import subgroup_reports
from clinsight.sequence.binning import SequenceArrays
from clinsight.sequence.model import ProgressionModel, two_column_logits

__all__ = [
    "RANKING_METRICS",
    "RISK_METRICS",
    "binary_risk_metrics",
    "calibrate",
    "ranking_report",
    "risk_report",
    "top_k",
]

RISK_METRICS = ("auroc", "auprc", "brier", "ece")
RANKING_METRICS = ("recall_at_k", "precision_at_k")


def binary_risk_metrics(y_true: ArrayLike, risk: ArrayLike) -> dict[str, float]:
    """AUROC, AUPRC, Brier and ECE of probabilities `risk` against 0/1 outcomes.

    Raises:
        DataError: the arrays differ in length, y is not 0/1, or risk is outside [0, 1].
    """
    y = np.asarray(y_true).astype(np.int64)
    p = np.asarray(risk, dtype=np.float64)
    if y.shape != p.shape or y.ndim != 1 or not len(y):
        raise DataError(
            f"outcomes and risks must be two equal 1-D arrays; got {y.shape}, {p.shape}."
        )
    if not np.isin(y, (0, 1)).all() or not np.all((p >= 0) & (p <= 1)):
        raise DataError("outcomes must be 0/1 and risks probabilities in [0, 1].")
    both = np.stack([1 - p, p], axis=1)
    return {
        "auroc": roc_auc(y, p),
        "auprc": float(average_precision_score(y, p)) if 0 < y.sum() < len(y) else float("nan"),
        "brier": brier_score(y, both, TaskType.BINARY),
        "ece": expected_calibration_error(y, both, TaskType.BINARY),
    }


def risk_report(
    y_true: ArrayLike,
    risk: ArrayLike,
    *,
    sex: ArrayLike | None = None,
    age: ArrayLike | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    threshold: float = 0.5,
    groups: ArrayLike | None = None,
) -> dict[str, Any]:
    """Point values, 95 % bootstrap intervals and subgroup reports, JSON-ready. With
    `groups` (the patient of each sample), the bootstrap resamples patients.

    Raises:
        DataError: see `binary_risk_metrics`.
    """
    y = np.asarray(y_true).astype(np.int64)
    p = np.asarray(risk, dtype=np.float64)
    values = binary_risk_metrics(y, p)
    samples: dict[str, list[float]] = {name: [] for name in RISK_METRICS}
    if n_bootstrap > 0:
        cases = np.arange(len(y))
        resamples = (
            bootstrap_weights(len(y), n_bootstrap, seed)
            if groups is None
            else cluster_bootstrap_weights(groups, n_bootstrap, seed)
        )
        for chunk in resamples:
            for counts in chunk:
                index = np.repeat(cases, counts.astype(np.int64))
                drawn = binary_risk_metrics(y[index], p[index])
                for name in RISK_METRICS:
                    samples[name].append(drawn[name])
    intervals = {
        name: [json_float(v) for v in percentile_interval(samples[name])]
        for name in RISK_METRICS
    } if n_bootstrap > 0 else {}  # fmt: skip
    subgroups = subgroup_reports(y, p, sex=sex, age=age, threshold=threshold)
    return {
        "n": len(y),
        "positives": int(y.sum()),
        "values": {k: json_float(v) for k, v in values.items()},
        "intervals": intervals,
        "bootstrap_replicates": n_bootstrap,
        "bootstrap_unit": "sample" if groups is None else "patient",
        "subgroups": {k: r.to_dict() for k, r in subgroups.items()},
    }


def calibrate(model: ProgressionModel, validation: SequenceArrays) -> float:
    """Fit and set the model's temperature on the validation stays; returns it.

    Raises:
        DataError: the validation labels are not 0/1.
    """
    logits = two_column_logits(model.logits(validation))
    model.temperature = fit_temperature(logits, validation.labels, TaskType.BINARY)
    return model.temperature


def top_k(scores: ArrayLike, labels: Sequence[str], k: int = 10) -> list[tuple[str, ...]]:
    """The `k` labels of highest score per row of (N, K) `scores`, best first."""
    matrix = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-matrix, axis=1, kind="stable")[:, :k]
    return [tuple(labels[j] for j in row) for row in order]


def ranking_report(
    truth: Sequence[frozenset[str]],
    ranked: Sequence[Sequence[str]],
    groups: ArrayLike,
    *,
    k: int = 10,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Mean recall@k (hits in the top `k` over the true labels) and precision@k (hits over
    `k`) of ranked label lists, with 95 % intervals resampling `groups` (patients).

    Raises:
        DataError: the lists differ in length, or a truth set is empty.
    """
    if len(truth) != len(ranked) or len(truth) != len(np.asarray(groups)) or not truth:
        raise DataError("truth sets, ranked lists and groups must be equal, non-empty lists.")
    if any(not labels for labels in truth):
        raise DataError("every sample needs at least one true label to score recall@k.")
    hits = np.array([len(set(r[:k]) & t) for t, r in zip(truth, ranked, strict=True)], float)
    per_sample = {
        "recall_at_k": hits / np.array([len(t) for t in truth], dtype=np.float64),
        "precision_at_k": hits / k,
    }
    samples: dict[str, list[float]] = {name: [] for name in RANKING_METRICS}
    for chunk in cluster_bootstrap_weights(groups, n_bootstrap, seed) if n_bootstrap else ():
        for name in RANKING_METRICS:
            samples[name].extend(chunk @ per_sample[name] / chunk.sum(axis=1))
    return {
        "n": len(truth),
        "patients": len(np.unique(np.asarray(groups))),
        "k": k,
        "values": {name: json_float(float(v.mean())) for name, v in per_sample.items()},
        "intervals": {name: [json_float(v) for v in percentile_interval(samples[name])]
                      for name in RANKING_METRICS} if n_bootstrap else {},
        "bootstrap_replicates": n_bootstrap,
        "bootstrap_unit": "patient",
    }  # fmt: skip
