"""Progression metrics: patient-level bootstrap, recall@k and precision@k."""

from __future__ import annotations

import numpy as np
import pytest

from clinsight.errors import DataError
from clinsight.evaluation.metrics import cluster_bootstrap_weights
from clinsight.evaluation.progression import ranking_report, risk_report, top_k


def test_cluster_bootstrap_draws_whole_patients() -> None:
    groups = np.array(["p1", "p1", "p2", "p3", "p3", "p3"])
    (chunk,) = cluster_bootstrap_weights(groups, 50, seed=0)
    assert chunk.shape == (50, 6)
    assert np.array_equal(chunk[:, 0], chunk[:, 1])
    assert np.array_equal(chunk[:, 3], chunk[:, 5])
    assert set(chunk[:, [0, 2, 3]].sum(axis=1).tolist()) == {3.0}  # three patients drawn
    with pytest.raises(DataError, match="needs at least one case"):
        next(cluster_bootstrap_weights(np.array([]), 5, seed=0))


def test_top_k_and_ranking_report_values() -> None:
    labels = ["X", "Y", "Z"]
    scores = np.array([[0.1, 0.9, 0.5], [0.8, 0.1, 0.2], [0.3, 0.2, 0.1]])
    ranked = top_k(scores, labels, k=2)
    assert ranked == [("Y", "Z"), ("X", "Z"), ("X", "Y")]
    truth = [frozenset({"X"}), frozenset({"X", "Z"}), frozenset({"Z"})]
    report = ranking_report(truth, ranked, ["a", "a", "b"], k=2, n_bootstrap=200)
    assert report["values"]["recall_at_k"] == pytest.approx((0 + 1 + 0) / 3)
    assert report["values"]["precision_at_k"] == pytest.approx((0 + 1 + 0) / 3)
    assert (report["n"], report["patients"], report["bootstrap_unit"]) == (3, 2, "patient")
    low, high = report["intervals"]["recall_at_k"]
    assert low == pytest.approx(0.0)
    assert high == pytest.approx(0.5)
    with pytest.raises(DataError, match="at least one true label"):
        ranking_report([frozenset()], [("X",)], ["a"])
    with pytest.raises(DataError, match="equal, non-empty lists"):
        ranking_report(truth, ranked[:2], ["a", "a", "b"])


def test_risk_report_resamples_patients_when_given() -> None:
    y = np.array([0, 1, 0, 1, 0, 0, 1, 0])
    risk = np.array([0.1, 0.8, 0.3, 0.6, 0.2, 0.4, 0.9, 0.1])
    groups = np.array(["a", "a", "b", "b", "c", "c", "d", "d"])
    by_patient = risk_report(y, risk, groups=groups, n_bootstrap=100)
    by_sample = risk_report(y, risk, n_bootstrap=100)
    assert by_patient["values"] == by_sample["values"]
    assert (by_patient["bootstrap_unit"], by_sample["bootstrap_unit"]) == ("patient", "sample")
    assert by_patient["intervals"] != by_sample["intervals"]
