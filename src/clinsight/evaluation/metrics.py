"""Classification metrics with bootstrap confidence intervals, for every MedMNIST task kind.

Every metric is computed from case weights: the point estimate uses weight 1 per case and
a bootstrap replicate uses how often each case was drawn, so both run the same code and a
whole bootstrap is a few matrix products. A ratio whose denominator is zero (sensitivity
without positives, precision without positive predictions, AUC with one class) is NaN and
macro averages leave it out, as scikit-learn does with ``zero_division=np.nan``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from clinsight.data.medmnist import TaskType
from clinsight.errors import DataError

__all__ = [
    "MetricsReport",
    "bootstrap_weights",
    "check_predictions",
    "classification_metrics",
    "cluster_bootstrap_weights",
    "json_float",
    "percentile_interval",
    "quadratic_weighted_kappa",
    "roc_auc",
]

_CELLS_PER_CHUNK = 4_000_000  # bootstrap weights held in memory at once (float64 cells)

_MACRO = ("sensitivity", "specificity", "precision", "f1")  # averaged over classes or labels

Values = dict[str, NDArray[np.float64]]


def json_float(value: float) -> float | None:
    """`value` as JSON allows it: NaN and infinities become None."""
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True)
class MetricsReport:
    """Metric values on a test set, their bootstrap percentile intervals and the confusion matrix.

    `confusion` is K x K (rows true, columns predicted, label order) for single-label tasks and,
    for multi-label tasks, one row ``[tn, fp, fn, tp]`` per label. `bootstrap_used` counts, per
    metric, the replicates where the metric was defined and so entered its interval.
    """

    task: TaskType
    values: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    confusion: list[list[int]]
    n: int
    threshold: float
    positive_index: int | None
    confidence: float = 0.95
    bootstrap_replicates: int = 0
    bootstrap_used: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (NaN becomes None)."""
        return {
            "task": str(self.task),
            "n": self.n,
            "threshold": self.threshold,
            "positive_index": self.positive_index,
            "values": {k: json_float(v) for k, v in self.values.items()},
            "intervals": {
                k: [json_float(lo), json_float(hi)] for k, (lo, hi) in self.intervals.items()
            },
            "confidence": self.confidence,
            "bootstrap_replicates": self.bootstrap_replicates,
            "bootstrap_used": dict(self.bootstrap_used),
            "confusion": [list(row) for row in self.confusion],
        }


def check_predictions(
    y_true: ArrayLike, scores: ArrayLike, task: TaskType
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Validate labels against (N, K) scores; single-label `y_true` comes back as (N,).

    Raises:
        DataError: shapes disagree, scores are not finite, or labels are out of range.
    """
    scores_arr = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(y_true)
    if scores_arr.ndim != 2 or len(scores_arr) == 0:
        raise DataError(f"Scores must be a non-empty (N, K) array; got shape {scores_arr.shape}.")
    n, k = scores_arr.shape
    if not np.all(np.isfinite(scores_arr)):
        raise DataError("Scores contain NaN or infinite values; check the model outputs.")
    if labels.dtype.kind not in "iub" and not np.all(np.mod(labels, 1) == 0):
        raise DataError(f"Labels must be integers; got dtype {labels.dtype}.")
    if task == TaskType.MULTI_LABEL:
        if labels.shape != (n, k):
            raise DataError(f"Multi-label y_true must have shape {(n, k)}; got {labels.shape}.")
        if not np.isin(labels, (0, 1)).all():
            raise DataError("Multi-label y_true must hold only 0 and 1.")
        return labels.astype(np.int64), scores_arr
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.shape != (n,):
        raise DataError(f"y_true must have shape ({n},) or ({n}, 1); got {labels.shape}.")
    if task == TaskType.BINARY and k != 2:
        raise DataError(f"A binary task needs two score columns; got {k}.")
    if labels.min() < 0 or labels.max() >= k:
        raise DataError(f"Labels must lie in 0..{k - 1}; got {labels.min()}..{labels.max()}.")
    return labels.astype(np.int64), scores_arr


def _ratio(num: NDArray[np.float64], den: NDArray[np.float64]) -> NDArray[np.float64]:
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _nanmean(x: NDArray[np.float64], axis: int = -1) -> NDArray[np.float64]:
    defined = np.isfinite(x)
    total = np.where(defined, x, 0.0).sum(axis=axis)
    return _ratio(total, defined.sum(axis=axis).astype(np.float64))


def _weighted_auc(
    scores: NDArray[np.float64], positive: NDArray[np.bool_], weights: NDArray[np.float64]
) -> NDArray[np.float64]:
    """ROC AUC (Mann-Whitney, ties count half) for each row of case weights (B, N)."""
    order = np.argsort(scores, kind="stable")
    ranked = scores[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    w = weights[:, order]
    pos = positive[order]
    pos_g = np.add.reduceat(np.where(pos, w, 0.0), starts, axis=1)
    neg_g = np.add.reduceat(np.where(pos, 0.0, w), starts, axis=1)
    below = np.cumsum(neg_g, axis=1) - neg_g
    wins = (pos_g * (below + 0.5 * neg_g)).sum(axis=1)
    return _ratio(wins, pos_g.sum(axis=1) * neg_g.sum(axis=1))


def roc_auc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """ROC AUC of scores against 0/1 labels; NaN when only one class is present.

    Raises:
        DataError: the arrays are not two 1-D arrays of the same length.
    """
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or y.shape != s.shape:
        raise DataError(f"roc_auc needs two 1-D arrays of equal length; got {y.shape}, {s.shape}.")
    return float(_weighted_auc(s, y.astype(bool), np.ones((1, len(y))))[0])


def _counts(
    truth: NDArray[np.bool_], predicted: NDArray[np.bool_], weights: NDArray[np.float64]
) -> tuple[NDArray[np.float64], ...]:
    """Weighted tp, fp, fn, tn per column of (N, C) one-vs-rest indicators: each (B, C)."""
    t, p = truth.astype(np.float64), predicted.astype(np.float64)
    tp, fp, fn = weights @ (t * p), weights @ ((1 - t) * p), weights @ (t * (1 - p))
    tn = weights.sum(axis=1, keepdims=True) - tp - fp - fn
    return tp, fp, fn, tn


def _rates(tp: Any, fp: Any, fn: Any, tn: Any) -> Values:
    return {
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "precision": _ratio(tp, tp + fp),
        "npv": _ratio(tn, tn + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
    }


def _quadratic_kappa(
    y: NDArray[np.int64], predicted: NDArray[np.int64], k: int, weights: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Cohen's kappa with quadratic weights for each row of case weights (B, N)."""
    cells = np.zeros((len(y), k * k))
    cells[np.arange(len(y)), y * k + predicted] = 1.0
    observed = (weights @ cells).reshape(-1, k, k)
    total = observed.sum(axis=(1, 2))
    expected = observed.sum(axis=2)[:, :, None] * observed.sum(axis=1)[:, None, :]
    expected /= np.where(total > 0, total, 1.0)[:, None, None]
    grid = np.arange(k)
    penalty = (grid[:, None] - grid[None, :]) ** 2 / max((k - 1) ** 2, 1)
    disagreement = (observed * penalty).sum(axis=(1, 2))
    chance = (expected * penalty).sum(axis=(1, 2))
    return 1.0 - _ratio(disagreement, chance)


def quadratic_weighted_kappa(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int) -> float:
    """Cohen's kappa with quadratic weights (i - j)^2 between graded classes 0..K-1, as
    scikit-learn's ``cohen_kappa_score(weights="quadratic")``; NaN when chance disagreement
    is zero (one class only).

    Raises:
        DataError: the arrays differ in length or hold labels outside 0..K-1.
    """
    y, p = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if y.shape != p.shape or not len(y) or min(y.min(), p.min()) < 0:
        raise DataError(f"QWK needs two equal non-empty label arrays; got {y.shape}, {p.shape}.")
    if max(y.max(), p.max()) >= num_classes:
        raise DataError(f"QWK labels must lie in 0..{num_classes - 1}.")
    kappa = _quadratic_kappa(
        y.astype(np.int64), p.astype(np.int64), num_classes, np.ones((1, len(y)))
    )
    return float(kappa[0])


def _values(
    y: NDArray[np.int64],
    probs: NDArray[np.float64],
    task: TaskType,
    predicted: NDArray[np.int64],
    positive_index: int,
    threshold: float,
    weights: NDArray[np.float64],
) -> Values:
    """Every metric for each row of case weights (B, N): a dict of (B,) arrays.

    `predicted` holds the class of every case (single-label tasks; ignored for multi-label).
    """
    k = probs.shape[1]
    if task == TaskType.MULTI_LABEL:
        truth, hit = y.astype(bool), probs >= threshold
        tp, fp, fn, tn = _counts(truth, hit, weights)
        rates = _rates(tp, fp, fn, tn)
        values = {name: _nanmean(rates[name]) for name in _MACRO}
        values["accuracy"] = _nanmean(_ratio(tp + tn, tp + fp + fn + tn))
        pair = np.stack([rates["sensitivity"], rates["specificity"]], axis=2)
        values["balanced_accuracy"] = _nanmean(_nanmean(pair))
        aucs = [_weighted_auc(probs[:, j], truth[:, j], weights) for j in range(k)]
        values["auc"] = _nanmean(np.stack(aucs, axis=1))
        return values
    truth = y[:, None] == np.arange(k)
    if task == TaskType.BINARY:
        positive = truth[:, [positive_index]]
        tp, fp, fn, tn = _counts(positive, (predicted == positive_index)[:, None], weights)
        values = {name: v[:, 0] for name, v in _rates(tp, fp, fn, tn).items()}
        values["accuracy"] = _ratio(tp + tn, tp + fp + fn + tn)[:, 0]
        pair = np.stack([values["sensitivity"], values["specificity"]], axis=1)
        values["balanced_accuracy"] = _nanmean(pair)  # mean recall of the classes present
        values["auc"] = _weighted_auc(probs[:, positive_index], positive[:, 0], weights)
        return values
    tp, fp, fn, tn = _counts(truth, predicted[:, None] == np.arange(k), weights)
    rates = _rates(tp, fp, fn, tn)
    values = {name: _nanmean(rates[name]) for name in _MACRO}
    values["accuracy"] = _ratio(tp.sum(axis=1), weights.sum(axis=1))
    values["balanced_accuracy"] = values["sensitivity"]  # mean recall over present classes
    aucs = [_weighted_auc(probs[:, j], truth[:, j], weights) for j in range(k)]
    values["auc"] = _nanmean(np.stack(aucs, axis=1))
    if task == TaskType.ORDINAL:
        values["qwk"] = _quadratic_kappa(y, predicted, k, weights)
    return values


def _predicted(
    probs: NDArray[np.float64], task: TaskType, positive_index: int, threshold: float
) -> NDArray[np.int64]:
    """Default class predictions: the threshold on P(positive) (binary), else the arg-max."""
    if task == TaskType.BINARY:
        hit = probs[:, positive_index] >= threshold
        return np.asarray(np.where(hit, positive_index, 1 - positive_index), dtype=np.int64)
    return np.asarray(probs.argmax(axis=1), dtype=np.int64)


def _confusion(
    y: NDArray[np.int64], probs: NDArray[np.float64], task: TaskType,
    predicted: NDArray[np.int64], threshold: float,
) -> list[list[int]]:  # fmt: skip
    k = probs.shape[1]
    if task == TaskType.MULTI_LABEL:
        tp, fp, fn, tn = _counts(y.astype(bool), probs >= threshold, np.ones((1, len(y))))
        matrix = np.stack([tn[0], fp[0], fn[0], tp[0]], axis=1)
    else:
        matrix = np.zeros((k, k))
        np.add.at(matrix, (y, predicted), 1)
    return [[int(v) for v in row] for row in matrix]


def classification_metrics(
    y_true: ArrayLike,
    probs: ArrayLike,
    task: TaskType,
    *,
    positive_index: int = 1,
    threshold: float = 0.5,
    predicted: ArrayLike | None = None,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> MetricsReport:
    """Accuracy, balanced accuracy, sensitivity, specificity, precision, F1 and ROC AUC (and
    the quadratic weighted kappa of ordinal tasks), with bootstrap intervals.

    Binary: a case is predicted positive when P(`positive_index`) >= `threshold`; NPV is added.
    Multi-class and ordinal: the prediction is the arg-max; sensitivity, specificity, precision
    and F1 are macro averages over classes and AUC is the one-vs-rest macro average. A decision
    rule chosen on validation passes its class of every case as `predicted` instead (single-
    label tasks). Balanced accuracy is the mean recall over the classes present (binary: the
    mean of sensitivity and specificity). Multi-label: each label is positive when its
    probability >= `threshold`; accuracy is the mean of the per-label accuracies (as MedMNIST
    reports it) and the others are macro averages over labels.
    Intervals are bootstrap percentile intervals over `n_bootstrap` case resamples (0 skips them).

    Raises:
        DataError: the inputs are malformed or an option is out of range.
    """
    y, p = check_predictions(y_true, probs, task)
    if task == TaskType.BINARY and positive_index not in (0, 1):
        raise DataError(f"positive_index must be 0 or 1 for a binary task; got {positive_index}.")
    if not 0.0 < threshold < 1.0 or not 0.0 < confidence < 1.0 or n_bootstrap < 0:
        raise DataError(
            f"Need 0 < threshold < 1, 0 < confidence < 1 and n_bootstrap >= 0; got "
            f"threshold={threshold}, confidence={confidence}, n_bootstrap={n_bootstrap}."
        )
    classes = _predicted(p, task, positive_index, threshold)
    if predicted is not None and task != TaskType.MULTI_LABEL:
        classes = np.asarray(predicted).astype(np.int64).ravel()
        if classes.shape != y.shape or classes.min() < 0 or classes.max() >= p.shape[1]:
            raise DataError(f"predicted must hold one class in 0..{p.shape[1] - 1} per case.")
    n = len(p)
    point = _values(y, p, task, classes, positive_index, threshold, np.ones((1, n)))
    values = {name: float(v[0]) for name, v in sorted(point.items())}
    intervals: dict[str, tuple[float, float]] = {}
    used: dict[str, int] = {}
    if n_bootstrap > 0:
        parts = [
            _values(y, p, task, classes, positive_index, threshold, weights)
            for weights in bootstrap_weights(n, n_bootstrap, seed)
        ]
        for name in values:
            samples = np.concatenate([part[name] for part in parts])
            used[name] = int(np.isfinite(samples).sum())
            intervals[name] = percentile_interval(samples, confidence)
    return MetricsReport(
        task=TaskType.MULTI_CLASS if task == TaskType.ORDINAL else task,
        values=values,
        intervals=intervals,
        confusion=_confusion(y, p, task, classes, threshold),
        n=n,
        threshold=threshold,
        positive_index=positive_index if task == TaskType.BINARY else None,
        confidence=confidence,
        bootstrap_replicates=n_bootstrap,
        bootstrap_used=used,
    )


def bootstrap_weights(n: int, replicates: int, seed: int) -> Iterator[NDArray[np.float64]]:
    """Case weights of `replicates` bootstrap resamples of `n` cases, in memory-bounded
    chunks of shape (B, n): entry (b, i) is how often resample b drew case i.

    Raises:
        DataError: `n` < 1 or `replicates` < 0.
    """
    if n < 1 or replicates < 0:
        raise DataError(f"bootstrap_weights needs n >= 1, replicates >= 0; got {n}, {replicates}.")
    rng = np.random.default_rng(seed)
    chunk = max(1, _CELLS_PER_CHUNK // n)
    for start in range(0, replicates, chunk):
        b = min(chunk, replicates - start)
        drawn = rng.integers(0, n, size=(b, n)) + n * np.arange(b)[:, None]
        yield np.bincount(drawn.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)


def cluster_bootstrap_weights(
    groups: ArrayLike, replicates: int, seed: int
) -> Iterator[NDArray[np.float64]]:
    """`bootstrap_weights` that resample whole groups (patients with several samples): entry
    (b, i) is how often resample b drew the group of case i.

    Raises:
        DataError: there are no cases, or `replicates` < 0.
    """
    _, inverse = np.unique(np.asarray(groups), return_inverse=True)
    if not len(inverse):
        raise DataError("cluster_bootstrap_weights needs at least one case.")
    for chunk in bootstrap_weights(int(inverse.max()) + 1, replicates, seed):
        yield chunk[:, inverse]


def percentile_interval(samples: ArrayLike, confidence: float = 0.95) -> tuple[float, float]:
    """The bootstrap percentile interval of the finite `samples` (NaN, NaN when none is)."""
    values = np.asarray(samples, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if not finite.size:
        return (math.nan, math.nan)
    tail = 100.0 * (1.0 - confidence) / 2.0
    lo, hi = np.percentile(finite, [tail, 100.0 - tail])
    return (float(lo), float(hi))
