"""The calibration method and the decision rule of an image model, chosen on validation.

Calibration: "none", "temperature" or "vector" scaling. Each candidate is cross-fitted on the
validation split (stratified folds: fitted on the other folds, scored on the held one), so
a calibration is never judged on the cases it was fitted on. "none" stays unless a method
lowers both the pooled out-of-fold ECE and the negative log-likelihood (ECE alone is noisy on
a few hundred cases); among those, the lowest ECE wins. The winner is then refitted
on the whole validation split.

Decision rule (single-label tasks): "argmax", "prior-corrected" (arg-max of p_c / prior_c,
the priors from the training labels: the Bayes rule for balanced accuracy) and, for ordinal
tasks, "median" (the lowest grade whose cumulative probability reaches 0.5). The rule is
chosen on the out-of-fold calibrated validation probabilities by balanced accuracy (QWK for
ordinal tasks); "argmax" stays unless another rule beats it. A binary rule is a threshold on
the positive-class probability (0.5, or the positive training prevalence); binary models
keep their indeterminate band (`evaluation.thresholds`) for the served finding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.model_selection import KFold, StratifiedKFold

from clinsight.data.medmnist import TaskType
from clinsight.errors import DataError
from clinsight.evaluation.calibration import (
    apply_temperature,
    apply_vector_scaling,
    expected_calibration_error,
    fit_temperature,
    fit_vector_scaling,
)
from clinsight.evaluation.metrics import check_predictions, classification_metrics

__all__ = [
    "CALIBRATION_METHODS",
    "DECISION_RULES",
    "Calibrator",
    "DecisionRule",
    "choose_calibration",
    "choose_decision_rule",
]

CALIBRATION_METHODS = ("none", "temperature", "vector")
DECISION_RULES = ("argmax", "prior-corrected", "median")
_FOLDS = 2


@dataclass(frozen=True)
class Calibrator:
    """A fitted calibration: `method` with its temperature or per-class scale and bias, and
    the validation evidence that chose it (`evidence`: out-of-fold ECE and NLL per method)."""

    method: str
    temperature: float = 1.0
    scale: tuple[float, ...] = ()
    bias: tuple[float, ...] = ()
    evidence: dict[str, Any] = field(default_factory=dict)

    def probabilities(self, logits: ArrayLike, task: TaskType) -> NDArray[np.float64]:
        """Calibrated probabilities (N, K) of logits (N, K).

        Raises:
            DataError: the logits are malformed.
        """
        if self.method == "vector":
            return apply_vector_scaling(logits, self.scale, self.bias)
        return apply_temperature(logits, self.temperature, task)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (as stored in model.json)."""
        return {
            "method": self.method, "temperature": self.temperature, "scale": list(self.scale),
            "bias": list(self.bias), "evidence": self.evidence,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibrator:
        """Read the stored form.

        Raises:
            DataError: the method is unknown or a parameter is not a number.
        """
        try:
            method = str(data["method"])
            calibrator = cls(
                method, float(data.get("temperature", 1.0)),
                tuple(float(v) for v in data.get("scale", ())),
                tuple(float(v) for v in data.get("bias", ())), dict(data.get("evidence", {})),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"Malformed calibration {data!r}: {exc}") from exc
        if method not in CALIBRATION_METHODS or (method == "vector" and not calibrator.scale):
            raise DataError(f"Unknown or incomplete calibration method {method!r}.")
        return calibrator


def _fit(
    method: str, logits: NDArray[np.float64], y: NDArray[np.int64], task: TaskType
) -> Calibrator:
    if method == "temperature":
        return Calibrator(method, fit_temperature(logits, y, task))
    if method == "vector":
        scale, bias = fit_vector_scaling(logits, y, task)
        return Calibrator(method, scale=tuple(map(float, scale)), bias=tuple(map(float, bias)))
    return Calibrator("none")


def _folds(y: NDArray[np.int64], task: TaskType, seed: int) -> list[NDArray[np.intp]]:
    """Held-out indices of each validation fold (stratified when every class allows it)."""
    column = y if task != TaskType.MULTI_LABEL else y.sum(axis=1)
    counts = np.unique(column, return_counts=True)[1]
    if task != TaskType.MULTI_LABEL and counts.min() >= _FOLDS:
        splitter: Any = StratifiedKFold(_FOLDS, shuffle=True, random_state=seed)
    else:
        splitter = KFold(_FOLDS, shuffle=True, random_state=seed)
    return [held for _, held in splitter.split(np.zeros(len(y)), column)]


def _nll(y: NDArray[np.int64], probs: NDArray[np.float64], task: TaskType) -> float:
    p = np.clip(probs, 1e-12, 1.0)
    if task == TaskType.MULTI_LABEL:
        return float(-np.mean(np.where(y == 1, np.log(p), np.log(np.clip(1 - probs, 1e-12, 1)))))
    return float(-np.mean(np.log(p[np.arange(len(y)), y])))


def choose_calibration(
    logits_val: ArrayLike, y_val: ArrayLike, task: TaskType, *, seed: int = 0, n_bins: int = 15
) -> tuple[Calibrator, NDArray[np.float64]]:
    """The calibration with the lowest cross-fitted validation ECE (see the module), refitted
    on all of validation, and its out-of-fold validation probabilities (for the decision rule).

    Raises:
        DataError: the logits and labels are malformed or too few to split.
    """
    y, logits = check_predictions(y_val, logits_val, task)
    if len(y) < 2 * _FOLDS:
        raise DataError(f"Choosing a calibration needs at least {2 * _FOLDS} validation cases.")
    methods = [m for m in CALIBRATION_METHODS if task != TaskType.MULTI_LABEL or m != "vector"]
    folds = _folds(y, task, seed)
    out_of_fold = {m: np.zeros_like(logits) for m in methods}
    for held in folds:
        fit_on = np.setdiff1d(np.arange(len(y)), held)
        for method in methods:
            fitted = _fit(method, logits[fit_on], y[fit_on], task)
            out_of_fold[method][held] = fitted.probabilities(logits[held], task)
    ece = {m: expected_calibration_error(y, p, task, n_bins) for m, p in out_of_fold.items()}
    nll = {m: _nll(y, p, task) for m, p in out_of_fold.items()}
    better = [m for m in methods if ece[m] < ece["none"] and nll[m] < nll["none"]]
    chosen = min(better, key=lambda m: ece[m]) if better else "none"
    evidence = {
        "criterion": (
            f"lowest pooled out-of-fold ECE ({n_bins} bins) among the methods that lower "
            "both ECE and NLL below no calibration"
        ),
        "folds": _FOLDS, "seed": seed, "n": len(y), "ece": ece, "nll": nll,
    }  # fmt: skip
    final = _fit(chosen, logits, y, task)
    calibrator = Calibrator(final.method, final.temperature, final.scale, final.bias, evidence)
    return calibrator, out_of_fold[chosen]


@dataclass(frozen=True)
class DecisionRule:
    """How a single-label model turns calibrated probabilities into one class.

    `priors` are the training class frequencies (used by "prior-corrected"); `evidence` holds
    the validation criterion of every candidate rule.
    """

    name: str
    priors: tuple[float, ...] = ()
    positive_index: int = 1
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def threshold(self) -> float:
        """The cut on P(positive) of a binary model (0.5 unless prior-corrected)."""
        return self.priors[self.positive_index] if self.name == "prior-corrected" else 0.5

    def predict(self, probs: ArrayLike) -> NDArray[np.int64]:
        """The class of every row of calibrated probabilities (N, K)."""
        p = np.asarray(probs, dtype=np.float64)
        if self.name == "prior-corrected":
            return np.asarray((p / np.asarray(self.priors)).argmax(axis=1), dtype=np.int64)
        if self.name == "median":
            return np.asarray((np.cumsum(p, axis=1) < 0.5).sum(axis=1), dtype=np.int64).clip(
                max=p.shape[1] - 1
            )
        return np.asarray(p.argmax(axis=1), dtype=np.int64)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (as stored in model.json)."""
        return {"name": self.name, "priors": list(self.priors),
                "positive_index": self.positive_index, "evidence": self.evidence}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DecisionRule:
        """Read the stored form.

        Raises:
            DataError: the rule is unknown or its priors are not positive numbers.
        """
        try:
            rule = cls(
                str(data["name"]), tuple(float(v) for v in data.get("priors", ())),
                int(data.get("positive_index", 1)), dict(data.get("evidence", {})),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"Malformed decision rule {data!r}: {exc}") from exc
        if rule.name not in DECISION_RULES or (
            rule.name == "prior-corrected" and not (rule.priors and min(rule.priors) > 0)
        ):
            raise DataError(f"Unknown or incomplete decision rule {rule.name!r}.")
        return rule


def choose_decision_rule(
    val_probs: ArrayLike,
    y_val: ArrayLike,
    train_labels: ArrayLike,
    task: TaskType,
    *,
    positive_index: int = 1,
) -> DecisionRule:
    """The rule with the best validation balanced accuracy (QWK for ordinal tasks) on
    calibrated out-of-fold probabilities; "argmax" unless another rule beats it.

    Raises:
        DataError: the inputs are malformed or the task is multi-label.
    """
    if task == TaskType.MULTI_LABEL:
        raise DataError("A decision rule is chosen for single-label tasks only.")
    y, p = check_predictions(y_val, val_probs, task)
    k = p.shape[1]
    counts = np.bincount(np.asarray(train_labels, dtype=np.int64).ravel(), minlength=k)
    priors = tuple(float(c) for c in (counts + 1) / (counts.sum() + k))  # never a zero prior
    names = [n for n in DECISION_RULES if n != "median" or task == TaskType.ORDINAL]
    criterion = "qwk" if task == TaskType.ORDINAL else "balanced_accuracy"
    scores: dict[str, dict[str, float]] = {}
    for name in names:
        rule = DecisionRule(name, priors, positive_index)
        values = classification_metrics(
            y, p, task, positive_index=positive_index, threshold=rule.threshold,
            predicted=rule.predict(p) if task != TaskType.BINARY else None, n_bootstrap=0,
        ).values  # fmt: skip
        scores[name] = {key: values[key] for key in ("accuracy", "balanced_accuracy", criterion)}

    def score(name: str) -> float:
        value = scores[name][criterion]
        return value if math.isfinite(value) else -math.inf

    best = max(names, key=lambda n: (score(n), -names.index(n)))
    evidence = {
        "criterion": f"validation {criterion.replace('_', ' ')} (out-of-fold calibrated)",
        "n": len(y), "scores": scores,
    }  # fmt: skip
    return DecisionRule(best, priors, positive_index, evidence)
