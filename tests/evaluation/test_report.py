"""End to end: calibrate on validation logits, evaluate test logits, write the figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from sklearn import metrics as sk
from sklearn.linear_model import LogisticRegression

from clinsight.data.medmnist import Split, TaskType, load_medmnist
from clinsight.errors import DataError
from clinsight.evaluation.calibration import apply_temperature, expected_calibration_error
from clinsight.evaluation.metrics import classification_metrics
from clinsight.evaluation.report import evaluate_predictions


def _overconfident(n: int, k: int, seed: int) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Logits three times too confident for labels drawn from softmax(logits / 3)."""
    rng = np.random.default_rng(seed)
    logits = 1.5 * rng.normal(size=(n, k))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = (rng.random((n, 1)) > np.cumsum(probs, axis=1)).sum(axis=1)
    return 3.0 * logits, y


def test_multiclass_report_calibrates_on_validation_only(tmp_path: Path) -> None:
    val_logits, y_val = _overconfident(6000, 3, seed=0)
    test_logits, y_test = _overconfident(800, 3, seed=1)
    report = evaluate_predictions(
        y_test,
        test_logits,
        val_logits,
        y_val,
        TaskType.MULTI_CLASS,
        ("a", "b", "c"),
        out_dir=tmp_path,
        n_bootstrap=100,
    )
    assert report.temperature == pytest.approx(3.0, rel=0.05)
    calibrated = apply_temperature(test_logits, report.temperature, TaskType.MULTI_CLASS)
    expected = classification_metrics(
        y_test, calibrated, TaskType.MULTI_CLASS, n_bootstrap=100, seed=0
    )
    assert report.metrics == expected
    assert report.ece_before == expected_calibration_error(
        y_test, apply_temperature(test_logits, 1.0, TaskType.MULTI_CLASS), TaskType.MULTI_CLASS
    )
    assert report.ece_after < report.ece_before / 2
    assert report.brier_after < report.brier_before
    assert set(report.plots) == {"roc", "reliability", "confusion"}
    assert all(
        path.parent == tmp_path and path.stat().st_size > 5000 for path in report.plots.values()
    )
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["calibration"]["temperature"] == report.temperature
    assert data["plots"]["roc"] == str(tmp_path / "roc.png")
    assert data["labels"] == ["a", "b", "c"]


def test_multilabel_report_without_figures() -> None:
    rng = np.random.default_rng(4)
    logits = 2.0 * rng.normal(size=(3000, 4))
    y = (rng.random(logits.shape) < 1 / (1 + np.exp(-logits))).astype(int)
    report = evaluate_predictions(
        y[:500],
        3 * logits[:500],
        3 * logits[500:],
        y[500:],
        TaskType.MULTI_LABEL,
        "wxyz",
        n_bootstrap=0,
    )
    assert report.temperature == pytest.approx(3.0, rel=0.05)
    assert report.plots == {}
    assert len(report.metrics.confusion) == 4
    assert report.metrics.intervals == {}


def test_breastmnist_logistic_regression(data_dir: Path, tmp_path: Path) -> None:
    """Real data: malignant (index 0) is the positive class of BreastMNIST."""
    splits = load_medmnist(data_dir, "breastmnist")
    x = {s: splits.images[s].reshape(len(splits.images[s]), -1) / 255.0 for s in Split}
    y = {s: splits.labels[s][:, 0] for s in Split}
    model = LogisticRegression(C=0.01, max_iter=2000).fit(x[Split.TRAIN], y[Split.TRAIN])
    report = evaluate_predictions(
        splits.labels[Split.TEST],
        model.predict_log_proba(x[Split.TEST]),
        model.predict_log_proba(x[Split.VAL]),
        splits.labels[Split.VAL],
        TaskType.BINARY,
        splits.info.labels,
        positive_index=splits.info.positive_index,
        out_dir=tmp_path,
    )
    probs = apply_temperature(
        model.predict_log_proba(x[Split.TEST]), report.temperature, TaskType.BINARY
    )
    pred = np.where(probs[:, 0] >= 0.5, 0, 1)
    y_test = y[Split.TEST]
    assert report.metrics.n == 156
    assert report.metrics.values["sensitivity"] == pytest.approx(
        sk.recall_score(y_test, pred, pos_label=0), abs=1e-12
    )
    assert report.metrics.values["auc"] == pytest.approx(
        sk.roc_auc_score(y_test == 0, probs[:, 0]), abs=1e-12
    )
    assert report.metrics.values["auc"] > 0.7
    assert report.metrics.bootstrap_used["auc"] == 1000
    lo, hi = report.metrics.intervals["auc"]
    assert lo < report.metrics.values["auc"] < hi
    assert set(report.plots) == {"roc", "reliability", "confusion"}


def test_label_names_must_match_outputs() -> None:
    logits = np.zeros((4, 3))
    with pytest.raises(DataError, match="Got 2 label names for 3 logit columns"):
        evaluate_predictions([0, 1, 2, 0], logits, logits, [0, 1, 2, 0], TaskType.MULTI_CLASS, "ab")
    with pytest.raises(DataError, match="two score columns"):
        evaluate_predictions([0, 1], logits[:2, :2], logits, [0, 1, 2, 0], TaskType.BINARY, "ab")
