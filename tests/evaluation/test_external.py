"""External validation: calibration summaries, logistic recalibration, the site report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clinsight.data.tabular import TabularDataset
from clinsight.errors import DataError
from clinsight.evaluation.external import external_validation, validation_report
from clinsight.evaluation.recalibration import (
    RecalibratedModel,
    RecalibrationMethod,
    fit_logistic_calibration,
)
from clinsight.tabular.models import RiskModel


def _miscalibrated(a: float, b: float, n: int = 20000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    p = rng.uniform(0.02, 0.98, n)
    truth = 1 / (1 + np.exp(-(a + b * np.log(p / (1 - p)))))
    return (rng.random(n) < truth).astype(int), p


def test_logistic_calibration_recovers_intercept_and_slope() -> None:
    y, p = _miscalibrated(0.5, 0.6)
    a, b = fit_logistic_calibration(y, p)
    assert a == pytest.approx(0.5, abs=0.05)
    assert b == pytest.approx(0.6, abs=0.05)
    shrunk_a, shrunk_b = fit_logistic_calibration(y[:50], p[:50], shrinkage=1e6)
    assert (shrunk_a, shrunk_b) == pytest.approx((0.0, 1.0), abs=1e-4)
    with pytest.raises(DataError, match="shrinkage must be >= 0"):
        fit_logistic_calibration(y, p, shrinkage=-1.0)


def test_report_of_calibrated_risks() -> None:
    y, p = _miscalibrated(0.0, 1.0)
    report = validation_report(y, p)
    assert report.n == 20000
    assert report.calibration_in_the_large == pytest.approx(0.0, abs=0.05)
    assert report.calibration_slope == pytest.approx(1.0, abs=0.05)
    assert report.ece < 0.02
    assert report.brier == pytest.approx(float(np.mean((p - y) ** 2)))
    assert report.mean_risk == pytest.approx(float(p.mean()))
    assert set(report.to_dict()) >= {"auc", "brier", "ece", "calibration_slope"}


def test_report_rejects_bad_input() -> None:
    with pytest.raises(DataError, match="both outcomes present"):
        validation_report([1, 1, 1], [0.2, 0.5, 0.9])
    with pytest.raises(DataError, match=r"probabilities in \[0, 1\]"):
        validation_report([0, 1], [0.2, 1.5])
    with pytest.raises(DataError, match="equally long"):
        validation_report([0, 1], [0.2])


def test_recalibration_to_a_shifted_site(cleveland: TabularDataset) -> None:
    """A site whose outcomes follow ``logit P = 1.0 + 0.5 * logit(model risk)``: the model
    under-predicts and is too extreme there until recalibrated on a 20 % sample."""
    model = RiskModel(cleveland.feature_types).fit(cleveland.X, cleveland.y)
    site_X = pd.concat([cleveland.X] * 3, ignore_index=True)
    risk = model.predict_proba(site_X)[:, 1]
    truth = 1 / (1 + np.exp(-(1.0 + 0.5 * np.log(risk / (1 - risk)))))
    site_y = (np.random.default_rng(0).random(len(truth)) < truth).astype(int)
    result = external_validation(model, site_X, site_y, site="shifted", random_state=0)
    assert result.site == "shifted"
    assert result.before.n == 909
    assert result.recalibration_rows == 181  # floor(0.2 * 909)
    assert result.before_on_rest is not None
    assert result.after_on_rest is not None
    assert result.after_on_rest.n == 728
    assert result.recalibration is not None
    assert result.recalibration.method == RecalibrationMethod.LOGISTIC
    assert result.to_dict()["recalibration"]["method"] == "logistic"
    assert result.intercept == pytest.approx(1.0, abs=0.35)
    assert result.slope == pytest.approx(0.5, abs=0.15)
    assert result.before_on_rest.calibration_slope == pytest.approx(0.5, abs=0.1)
    assert result.after_on_rest.calibration_slope == pytest.approx(1.0, abs=0.25)
    assert result.after_on_rest.ece < 0.5 * result.before_on_rest.ece
    assert result.after_on_rest.auc == result.before_on_rest.auc  # monotone map
    assert result.to_dict()["after_on_rest"]["n"] == 728
    shipped = external_validation(model, site_X, site_y, recalibration_fraction=0.0)
    assert (shipped.after_on_rest, shipped.recalibration) == (None, None)
    with pytest.raises(DataError, match=r"recalibration_fraction must be in \[0, 1\)"):
        external_validation(model, site_X, site_y, recalibration_fraction=1.0)


def test_recalibrated_model_applies_the_fitted_map(cleveland: TabularDataset) -> None:
    X, y = cleveland.X, cleveland.y
    model = RiskModel(cleveland.feature_types).fit(X, y)
    recalibrated = RecalibratedModel(model).fit(X, y)
    p = model.predict_proba(X)[:, 1]
    z = np.log(p / (1 - p))
    expected = 1 / (1 + np.exp(-(recalibrated.intercept_ + recalibrated.slope_ * z)))
    np.testing.assert_allclose(recalibrated.predict_proba(X)[:, 1], expected)
    assert recalibrated.predict(X).tolist() == (expected >= 0.5).astype(int).tolist()
