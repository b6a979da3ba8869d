"""Metrics against scikit-learn, the bootstrap against explicit resampling, and input checks."""

from __future__ import annotations

import json
from typing import TypedDict

import numpy as np
import pytest
from numpy.typing import ArrayLike, NDArray
from sklearn import metrics as sk

from clinsight.data.medmnist import TaskType
from clinsight.errors import DataError
from clinsight.evaluation.metrics import (
    MetricsReport,
    check_predictions,
    classification_metrics,
    json_float,
    quadratic_weighted_kappa,
    roc_auc,
)

TOL = 1e-12
NAN = np.nan


def _softmax(z: NDArray[np.float64]) -> NDArray[np.float64]:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    probs: NDArray[np.float64] = e / e.sum(axis=1, keepdims=True)  # numpy's reductions: Any
    return probs


def _close(actual: float, expected: float) -> None:
    if np.isnan(expected):
        assert np.isnan(actual)
    else:
        assert actual == pytest.approx(expected, abs=TOL, rel=0)


def _binary_expected(
    y: NDArray[np.int64], probs: NDArray[np.float64], pos: int, threshold: float
) -> dict[str, float]:
    neg = 1 - pos
    pred = np.where(probs[:, pos] >= threshold, pos, neg)
    two = len(np.unique(y)) == 2
    return {
        "accuracy": sk.accuracy_score(y, pred),
        "balanced_accuracy": sk.balanced_accuracy_score(y, pred),
        "sensitivity": sk.recall_score(y, pred, pos_label=pos, zero_division=NAN),
        "specificity": sk.recall_score(y, pred, pos_label=neg, zero_division=NAN),
        "precision": sk.precision_score(y, pred, pos_label=pos, zero_division=NAN),
        "npv": sk.precision_score(y, pred, pos_label=neg, zero_division=NAN),
        "f1": sk.f1_score(y, pred, pos_label=pos, zero_division=NAN),
        "auc": sk.roc_auc_score(y == pos, probs[:, pos]) if two else NAN,
    }


@pytest.mark.parametrize("positive_index", [0, 1])
@pytest.mark.parametrize("threshold", [0.5, 0.3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_metrics_match_sklearn(positive_index: int, threshold: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 157)
    p1 = np.round(rng.random(157), 1)  # coarse values: many tied scores
    probs = np.c_[1 - p1, p1]
    report = classification_metrics(
        y, probs, TaskType.BINARY, positive_index=positive_index, threshold=threshold,
        n_bootstrap=0,
    )  # fmt: skip
    expected = _binary_expected(y, probs, positive_index, threshold)
    assert set(report.values) == set(expected)
    for name, value in expected.items():
        _close(report.values[name], value)
    pred = np.where(probs[:, positive_index] >= threshold, positive_index, 1 - positive_index)
    assert report.confusion == sk.confusion_matrix(y, pred, labels=[0, 1]).tolist()
    assert report.n == 157
    assert report.positive_index == positive_index


@pytest.mark.parametrize(
    ("y", "p1"),
    [
        ([1, 1, 1, 1], [0.9, 0.2, 0.6, 0.7]),  # one class only: AUC and specificity undefined
        ([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]),  # nothing predicted positive: precision undefined
        ([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]),  # every score tied, at the threshold
        ([0, 1, 1, 0, 1], [0.8, 0.9, 0.7, 0.6, 0.99]),  # everything predicted positive
    ],
)
def test_binary_edge_cases_match_sklearn(y: list[int], p1: list[float]) -> None:
    labels = np.array(y)
    probs = np.c_[1 - np.array(p1), p1]
    report = classification_metrics(labels, probs, TaskType.BINARY, n_bootstrap=0)
    for name, value in _binary_expected(labels, probs, 1, 0.5).items():
        _close(report.values[name], value)


def test_binary_known_values() -> None:
    y = np.array([0, 0, 0, 1, 1, 1])
    p1 = np.array([0.1, 0.6, 0.3, 0.8, 0.4, 0.9])
    report = classification_metrics(y, np.c_[1 - p1, p1], TaskType.BINARY, n_bootstrap=0)
    assert report.confusion == [[2, 1], [1, 2]]
    assert report.values["sensitivity"] == pytest.approx(2 / 3)
    assert report.values["specificity"] == pytest.approx(2 / 3)
    assert report.values["auc"] == pytest.approx(8 / 9)


@pytest.mark.parametrize("task", [TaskType.MULTI_CLASS, TaskType.ORDINAL])
@pytest.mark.parametrize("seed", [0, 1])
def test_multiclass_metrics_match_sklearn(task: TaskType, seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = 5
    y = rng.integers(0, k, 300)
    probs = _softmax(rng.normal(size=(300, k)) + 1.5 * (y[:, None] == np.arange(k)))
    report = classification_metrics(y, probs, task, n_bootstrap=0)
    pred = probs.argmax(axis=1)
    kw = {"average": "macro", "labels": list(range(k)), "zero_division": NAN}
    specificity = np.mean([sk.recall_score(y == j, pred == j, pos_label=False) for j in range(k)])
    expected = {
        "accuracy": sk.accuracy_score(y, pred),
        "balanced_accuracy": sk.balanced_accuracy_score(y, pred),
        "sensitivity": sk.recall_score(y, pred, **kw),
        "specificity": specificity,
        "precision": sk.precision_score(y, pred, **kw),
        "f1": sk.f1_score(y, pred, **kw),
        "auc": sk.roc_auc_score(y, probs, multi_class="ovr", average="macro"),
    }
    if task == TaskType.ORDINAL:
        expected["qwk"] = sk.cohen_kappa_score(y, pred, weights="quadratic")
    assert set(report.values) == set(expected)
    for name, value in expected.items():
        _close(report.values[name], value)
    assert report.confusion == sk.confusion_matrix(y, pred, labels=list(range(k))).tolist()
    assert report.task == TaskType.MULTI_CLASS
    assert report.positive_index is None


def test_multiclass_with_absent_class_averages_defined_classes() -> None:
    y = np.array([0, 0, 1, 1, 1, 0, 1, 0])  # class 2 never occurs
    probs = _softmax(np.random.default_rng(3).normal(size=(8, 3)))
    probs[0] = [0.1, 0.1, 0.8]  # one case predicted as the absent class
    report = classification_metrics(y, probs, TaskType.MULTI_CLASS, n_bootstrap=0)
    pred = probs.argmax(axis=1)
    kw = {"average": "macro", "labels": [0, 1, 2], "zero_division": NAN}
    _close(report.values["sensitivity"], sk.recall_score(y, pred, **kw))
    _close(report.values["precision"], sk.precision_score(y, pred, **kw))
    _close(report.values["f1"], sk.f1_score(y, pred, **kw))
    per_class_auc = [sk.roc_auc_score(y == j, probs[:, j]) for j in (0, 1)]
    _close(report.values["auc"], float(np.mean(per_class_auc)))
    assert report.confusion[2] == [0, 0, 0]


def test_multilabel_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, (400, 6))
    probs = np.clip(0.35 * y + 0.65 * rng.random((400, 6)), 0, 1)
    report = classification_metrics(y, probs, TaskType.MULTI_LABEL, n_bootstrap=0)
    pred = (probs >= 0.5).astype(int)
    kw = {"average": "macro", "zero_division": NAN}
    spec = np.mean([sk.recall_score(y[:, j], pred[:, j], pos_label=0) for j in range(6)])
    expected = {
        "accuracy": np.mean([sk.accuracy_score(y[:, j], pred[:, j]) for j in range(6)]),
        "balanced_accuracy": np.mean(
            [sk.balanced_accuracy_score(y[:, j], pred[:, j]) for j in range(6)]
        ),
        "sensitivity": sk.recall_score(y, pred, **kw),
        "specificity": spec,
        "precision": sk.precision_score(y, pred, **kw),
        "f1": sk.f1_score(y, pred, **kw),
        "auc": sk.roc_auc_score(y, probs, average="macro"),
    }
    assert set(report.values) == set(expected)
    for name, value in expected.items():
        _close(report.values[name], value)
    expected_confusion = [m.ravel().tolist() for m in sk.multilabel_confusion_matrix(y, pred)]
    assert report.confusion == expected_confusion  # [tn, fp, fn, tp] per label


def test_bootstrap_is_case_resampling() -> None:
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 60)
    p1 = np.clip(0.3 * y + 0.7 * rng.random(60), 0, 1)
    probs = np.c_[1 - p1, p1]
    report = classification_metrics(y, probs, TaskType.BINARY, n_bootstrap=200, seed=11)
    draws = np.random.default_rng(11).integers(0, 60, size=(200, 60))
    accuracy = [sk.accuracy_score(y[d], (p1[d] >= 0.5).astype(int)) for d in draws]
    auc = [sk.roc_auc_score(y[d], p1[d]) for d in draws if len(np.unique(y[d])) == 2]
    assert report.intervals["accuracy"] == pytest.approx(
        tuple(np.percentile(accuracy, [2.5, 97.5]))
    )
    assert report.intervals["auc"] == pytest.approx(tuple(np.percentile(auc, [2.5, 97.5])))
    assert report.bootstrap_used["auc"] == len(auc)
    assert report.bootstrap_replicates == 200


def test_bootstrap_skips_undefined_replicates() -> None:
    y = np.array([0, 0, 0, 0, 0, 1])
    p1 = np.array([0.1, 0.2, 0.7, 0.3, 0.4, 0.9])
    report = classification_metrics(y, np.c_[1 - p1, p1], TaskType.BINARY, n_bootstrap=300)
    draws = np.random.default_rng(0).integers(0, 6, size=(300, 6))
    with_both = int(sum(5 in d and (d != 5).any() for d in draws))
    assert report.bootstrap_used["auc"] == with_both < 300
    assert report.bootstrap_used["accuracy"] == 300
    assert report.bootstrap_used["specificity"] == int(sum((d != 5).any() for d in draws))


def test_bootstrap_is_seeded() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 90)
    probs = _softmax(rng.normal(size=(90, 3)))
    first = classification_metrics(y, probs, TaskType.MULTI_CLASS, n_bootstrap=50, seed=4)
    again = classification_metrics(y, probs, TaskType.MULTI_CLASS, n_bootstrap=50, seed=4)
    other = classification_metrics(y, probs, TaskType.MULTI_CLASS, n_bootstrap=50, seed=5)
    assert first.intervals == again.intervals
    assert first.intervals != other.intervals
    lo, hi = first.intervals["accuracy"]
    assert lo <= first.values["accuracy"] <= hi


def test_no_bootstrap_gives_no_intervals() -> None:
    report = classification_metrics(
        [0, 1], [[0.7, 0.3], [0.2, 0.8]], TaskType.BINARY, n_bootstrap=0
    )
    assert report.intervals == {}
    assert report.bootstrap_used == {}


def test_to_dict_is_strict_json() -> None:
    report = classification_metrics([1, 1, 1], [[0.3, 0.7]] * 3, TaskType.BINARY, n_bootstrap=20)
    data = report.to_dict()
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text)["values"]["auc"] is None
    assert data["values"]["accuracy"] == 1.0
    assert data["intervals"]["accuracy"] == [1.0, 1.0]
    assert data["confusion"] == [[0, 0], [0, 3]]
    assert data["task"] == "binary"
    assert isinstance(report, MetricsReport)


def test_roc_auc() -> None:
    y = np.array([0, 1, 1, 0, 1])
    s = np.array([0.2, 0.8, 0.5, 0.5, 0.1])
    assert roc_auc(y, s) == pytest.approx(sk.roc_auc_score(y, s), abs=TOL)
    assert np.isnan(roc_auc([1, 1], [0.2, 0.3]))
    with pytest.raises(DataError, match="1-D arrays of equal length"):
        roc_auc([0, 1], [0.3])


def test_json_float() -> None:
    assert json_float(0.25) == 0.25
    assert json_float(float("nan")) is None
    assert json_float(float("inf")) is None


def test_check_predictions_accepts_column_labels() -> None:
    y, p = check_predictions(
        np.array([[0], [2]]), [[0.1, 0.2, 0.7], [0.3, 0.3, 0.4]], TaskType.ORDINAL
    )
    assert y.tolist() == [0, 2]
    assert p.shape == (2, 3)


@pytest.mark.parametrize(
    ("y", "probs", "task", "match"),
    [
        ([0, 1], [0.2, 0.8], TaskType.BINARY, r"\(N, K\) array"),
        ([0, 1], np.zeros((0, 2)), TaskType.BINARY, r"\(N, K\) array"),
        ([0, 1, 1], [[0.5, 0.5]] * 2, TaskType.BINARY, r"shape \(2,\) or \(2, 1\)"),
        ([0, 1], [[0.2, 0.3, 0.5]] * 2, TaskType.BINARY, "two score columns"),
        ([0, 3], [[0.2, 0.3, 0.5]] * 2, TaskType.MULTI_CLASS, r"0\.\.2; got 0\.\.3"),
        ([0, 1], [[np.nan, 0.5]] * 2, TaskType.BINARY, "NaN or infinite"),
        ([0.5, 1], [[0.5, 0.5]] * 2, TaskType.BINARY, "must be integers"),
        ([[0, 1]], [[0.2, 0.3, 0.5]], TaskType.MULTI_LABEL, r"shape \(1, 3\)"),
        ([[0, 2]], [[0.2, 0.3]], TaskType.MULTI_LABEL, "only 0 and 1"),
    ],
)
def test_malformed_inputs_raise(y: ArrayLike, probs: ArrayLike, task: TaskType, match: str) -> None:
    with pytest.raises(DataError, match=match):
        classification_metrics(y, probs, task, n_bootstrap=0)


class _Options(TypedDict, total=False):
    """The keyword options of `classification_metrics` one bad-option case sets."""

    positive_index: int
    threshold: float
    confidence: float
    n_bootstrap: int


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"positive_index": 2}, "positive_index must be 0 or 1"),
        ({"threshold": 1.5}, "0 < threshold < 1"),
        ({"confidence": 1.0}, "0 < confidence < 1"),
        ({"n_bootstrap": -1}, "n_bootstrap >= 0"),
    ],
)
def test_bad_options_raise(options: _Options, match: str) -> None:
    with pytest.raises(DataError, match=match):
        classification_metrics([0, 1], [[0.6, 0.4], [0.1, 0.9]], TaskType.BINARY, **options)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_quadratic_weighted_kappa_matches_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 5, 200)
    pred = np.clip(y + rng.integers(-2, 3, 200), 0, 4)  # graded errors, mostly near the truth
    expected = sk.cohen_kappa_score(y, pred, weights="quadratic")
    assert quadratic_weighted_kappa(y, pred, 5) == pytest.approx(expected, abs=1e-12)
    assert quadratic_weighted_kappa(y, y, 5) == 1.0


def test_quadratic_weighted_kappa_of_one_class_is_nan() -> None:
    assert np.isnan(quadratic_weighted_kappa([2, 2, 2], [2, 2, 2], 5))
    with pytest.raises(DataError, match=r"QWK labels must lie in 0\.\.2"):
        quadratic_weighted_kappa([0, 1], [0, 3], 3)


def test_given_predictions_replace_the_argmax() -> None:
    y = np.array([0, 0, 0, 1, 1, 2])
    probs = np.tile([0.6, 0.3, 0.1], (6, 1))  # the arg-max is always class 0
    pred = np.array([0, 0, 1, 1, 1, 2])
    report = classification_metrics(y, probs, TaskType.ORDINAL, predicted=pred, n_bootstrap=20)
    assert report.values["accuracy"] == pytest.approx(5 / 6)
    assert report.values["balanced_accuracy"] == pytest.approx((2 / 3 + 1 + 1) / 3)
    assert report.values["qwk"] == pytest.approx(sk.cohen_kappa_score(y, pred, weights="quadratic"))
    assert report.confusion == sk.confusion_matrix(y, pred).tolist()
    assert len(report.intervals["qwk"]) == 2
    with pytest.raises(DataError, match="predicted must hold one class"):
        classification_metrics(y, probs, TaskType.ORDINAL, predicted=[0, 1], n_bootstrap=0)
