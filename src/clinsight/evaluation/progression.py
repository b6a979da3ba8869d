"""Metrics of a binary risk over time (in-hospital death): AUROC, AUPRC, Brier and ECE with
bootstrap percentile intervals, and the subgroups by sex and age band.

AUROC is `metrics.roc_auc`; AUPRC is average precision (the step-wise area, as
scikit-learn computes it); Brier and ECE are `calibration.brier_score` and the project's
15-bin top-class `expected_calibration_error`. Every bootstrap replicate resamples the
stays (`metrics.bootstrap_weights`), the same replicates for every metric.
"""

from __future__ import annotations

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
from clinsight.evaluation.metrics import bootstrap_weights, json_float, percentile_interval, roc_auc
from clinsight.evaluation.subgroups import subgroup_reports
from clinsight.sequence.binning import SequenceArrays
from clinsight.sequence.model import ProgressionModel, two_column_logits

__all__ = ["RISK_METRICS", "binary_risk_metrics", "calibrate", "risk_report"]

RISK_METRICS = ("auroc", "auprc", "brier", "ece")


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
) -> dict[str, Any]:
    """Point values, 95 % bootstrap intervals and subgroup reports, JSON-ready.

    Raises:
        DataError: see `binary_risk_metrics`.
    """
    y = np.asarray(y_true).astype(np.int64)
    p = np.asarray(risk, dtype=np.float64)
    values = binary_risk_metrics(y, p)
    samples: dict[str, list[float]] = {name: [] for name in RISK_METRICS}
    if n_bootstrap > 0:
        cases = np.arange(len(y))
        for chunk in bootstrap_weights(len(y), n_bootstrap, seed):
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
