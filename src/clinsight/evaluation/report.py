"""One call from a model's logits to a complete evaluation: calibrated metrics, CIs, figures.

This is what training, the CLI and the benchmarks call after predicting the validation and
test splits. The calibration is fitted on the validation split only (temperature scaling, or
the calibrator and decision rule the training recipe chose there, `evaluation.selection`);
every figure and number reported for the test split uses the calibrated probabilities, and
the ECE and Brier score are given before and after calibration so its effect is visible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from numpy.typing import ArrayLike

from clinsight.data.medmnist import TaskType
from clinsight.errors import DataError
from clinsight.evaluation.calibration import (
    ReliabilityBins,
    apply_temperature,
    brier_score,
    fit_temperature,
    reliability_bins,
)
from clinsight.evaluation.metrics import MetricsReport, check_predictions, classification_metrics
from clinsight.evaluation.plots import plot_confusion, plot_reliability, plot_roc
from clinsight.evaluation.selection import Calibrator, DecisionRule

__all__ = ["EvaluationReport", "evaluate_predictions"]


@dataclass(frozen=True)
class EvaluationReport:
    """Test-split evaluation of one model: metrics on calibrated probabilities and calibration."""

    task: TaskType
    labels: tuple[str, ...]
    temperature: float
    metrics: MetricsReport
    reliability_before: ReliabilityBins
    reliability_after: ReliabilityBins
    brier_before: float
    brier_after: float
    plots: dict[str, Path] = field(default_factory=dict)
    calibrator: Calibrator | None = None
    decision_rule: DecisionRule | None = None
    before_choices: dict[str, float] = field(default_factory=dict)

    @property
    def ece_before(self) -> float:
        """Expected calibration error of the raw (T = 1) test probabilities."""
        return self.reliability_before.ece

    @property
    def ece_after(self) -> float:
        """Expected calibration error of the calibrated test probabilities."""
        return self.reliability_after.ece

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: metrics, intervals, calibration, the decision rule and its
        validation evidence, and the paths of the figures."""
        chosen = {}
        if self.decision_rule is not None:
            chosen["decision_rule"] = self.decision_rule.to_dict()
        if self.before_choices:
            chosen["test_before_choices"] = dict(self.before_choices)
        method = "temperature scaling (fitted on the validation split)"
        evidence = {}
        if self.calibrator is not None:
            method = f"{self.calibrator.method} (chosen and fitted on the validation split)"
            evidence = {"parameters": self.calibrator.to_dict()}
        return {
            "task": str(self.task),
            "labels": list(self.labels),
            "metrics": self.metrics.to_dict(),
            **chosen,
            "calibration": {
                "method": method,
                **evidence,
                "temperature": self.temperature,
                "ece_before": self.ece_before,
                "ece_after": self.ece_after,
                "brier_before": self.brier_before,
                "brier_after": self.brier_after,
                "reliability_before": self.reliability_before.to_dict(),
                "reliability_after": self.reliability_after.to_dict(),
            },
            "plots": {name: str(path) for name, path in self.plots.items()},
        }


def evaluate_predictions(
    y_true: ArrayLike,
    logits_test: ArrayLike,
    logits_val: ArrayLike,
    y_val: ArrayLike,
    task: TaskType,
    labels: Sequence[str],
    positive_index: int = 1,
    out_dir: Path | None = None,
    *,
    threshold: float = 0.5,
    n_bootstrap: int = 1000,
    seed: int = 0,
    n_bins: int = 15,
    calibrator: Calibrator | None = None,
    decision_rule: DecisionRule | None = None,
) -> EvaluationReport:
    """Calibrate on validation logits, then evaluate the test logits with bootstrap intervals.

    The calibration is `calibrator` when given (chosen on validation), else a temperature
    fitted on the validation logits. With `decision_rule` (single-label tasks), its classes
    are scored and `before_choices` holds the test accuracy, balanced accuracy (and QWK) of
    the arg-max of the uncalibrated probabilities beside them. With `out_dir`, writes
    roc.png, reliability.png (before and after calibration) and, for single-label tasks,
    confusion.png there.

    Raises:
        DataError: the labels, logits or options are malformed or disagree with each other.
    """
    y_test, raw_test = check_predictions(y_true, logits_test, task)
    check_predictions(y_val, logits_val, task)
    if len(labels) != raw_test.shape[1]:
        raise DataError(
            f"Got {len(labels)} label names for {raw_test.shape[1]} logit columns; "
            "pass the dataset's label names in output order."
        )
    if calibrator is None:
        temperature = fit_temperature(logits_val, y_val, task)
        after = apply_temperature(raw_test, temperature, task)
    else:
        temperature = calibrator.temperature
        after = calibrator.probabilities(raw_test, task)
    before = apply_temperature(raw_test, 1.0, task)
    single_label = task != TaskType.MULTI_LABEL
    rule = decision_rule if single_label else None
    metrics = classification_metrics(
        y_test,
        after,
        task,
        positive_index=positive_index,
        threshold=threshold if rule is None else rule.threshold,
        predicted=None if rule is None else rule.predict(after),
        n_bootstrap=n_bootstrap,
        seed=seed,
    )
    before_choices = {}
    if rule is not None or calibrator is not None:
        raw = classification_metrics(
            y_test, before, task, positive_index=positive_index, threshold=threshold,
            n_bootstrap=0,
        ).values  # fmt: skip
        before_choices = {k: v for k, v in raw.items() if k in ("accuracy", "balanced_accuracy",
                                                                "qwk")}  # fmt: skip
    report = EvaluationReport(
        task=task,
        labels=tuple(labels),
        temperature=temperature,
        metrics=metrics,
        reliability_before=reliability_bins(y_test, before, task, n_bins),
        reliability_after=reliability_bins(y_test, after, task, n_bins),
        brier_before=brier_score(y_test, before, task),
        brier_after=brier_score(y_test, after, task),
        calibrator=calibrator,
        decision_rule=rule,
        before_choices=before_choices,
    )
    if out_dir is None:
        return report
    return replace(report, plots=_write_plots(report, y_test, after, positive_index, Path(out_dir)))


def _write_plots(
    report: EvaluationReport,
    y_test: ArrayLike,
    probs: ArrayLike,
    positive_index: int,
    out_dir: Path,
) -> dict[str, Path]:
    plots = {
        "reliability": plot_reliability(
            report.reliability_before, out_dir / "reliability.png", after=report.reliability_after
        )
    }
    if math.isfinite(report.metrics.values["auc"]):
        plots["roc"] = plot_roc(
            y_test,
            probs,
            report.task,
            out_dir / "roc.png",
            labels=report.labels,
            positive_index=positive_index,
        )
    if report.task != TaskType.MULTI_LABEL:
        plots["confusion"] = plot_confusion(
            report.metrics.confusion, out_dir / "confusion.png", labels=report.labels
        )
    return plots
