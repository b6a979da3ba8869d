"""Recalibration by closed testing: keep, intercept, or intercept and slope; no slope <= 0."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2

from clinsight.data.tabular import TabularDataset
from clinsight.errors import DataError
from clinsight.evaluation.external import external_validation, validation_report
from clinsight.evaluation.metrics import bootstrap_weights, roc_auc
from clinsight.evaluation.recalibration import (
    MIN_EVENTS_INTERCEPT,
    MIN_EVENTS_SLOPE,
    RecalibratedModel,
    RecalibrationMethod,
    choose_recalibration,
    fit_logistic_calibration,
)
from clinsight.tabular.models import RiskModel


def _site(a: float, b: float, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Risks ``p`` and outcomes drawn from ``logit P(y) = a + b * logit(p)``."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.05, 0.95, n)
    truth = 1 / (1 + np.exp(-(a + b * np.log(p / (1 - p)))))
    return (rng.random(n) < truth).astype(int), p


def test_the_event_minima_are_ten_and_twenty() -> None:
    assert (MIN_EVENTS_INTERCEPT, MIN_EVENTS_SLOPE) == (10, 20)


def test_a_clearly_miscalibrated_large_sample_gets_intercept_and_slope() -> None:
    y, p = _site(1.0, 0.5, 2000)
    choice = choose_recalibration(y, p)
    assert choice.method == RecalibrationMethod.LOGISTIC
    assert choice.intercept == pytest.approx(1.0, abs=0.2)
    assert choice.slope == pytest.approx(0.5, abs=0.1)
    assert [t.comparison for t in choice.tests] == [
        "logistic vs none", "intercept vs none", "logistic vs intercept",
    ]  # fmt: skip
    assert [t.df for t in choice.tests] == [2, 1, 1]
    assert all(t.p_value < 0.05 for t in choice.tests)
    for test in choice.tests:
        assert test.p_value == pytest.approx(chi2.sf(test.statistic, test.df))
    assert choice.reason.startswith("Logistic recalibration (intercept +")
    assert choice.refused == []
    assert choice.to_dict()["method"] == "logistic"
    assert choice.to_dict()["min_events"] == {"intercept": 10, "logistic": 20}


def test_a_shift_of_the_average_risk_gets_an_intercept_only() -> None:
    y, p = _site(1.0, 1.0, 1000)
    choice = choose_recalibration(y, p)
    assert choice.method == RecalibrationMethod.INTERCEPT
    assert choice.slope == 1.0
    assert choice.intercept == pytest.approx(1.0, abs=0.25)
    assert choice.tests[2].comparison == "logistic vs intercept"
    assert choice.tests[2].p_value >= 0.05
    assert choice.reason.startswith("Recalibration-in-the-large (intercept +")


def test_a_calibrated_sample_keeps_the_model() -> None:
    y, p = _site(0.0, 1.0, 500)
    choice = choose_recalibration(y, p)
    assert (choice.method, choice.intercept, choice.slope) == (RecalibrationMethod.NONE, 0.0, 1.0)
    assert [t.comparison for t in choice.tests] == ["logistic vs none"]
    assert choice.tests[0].p_value >= 0.05
    np.testing.assert_array_equal(choice.apply(p), p)


def test_inverted_labels_are_not_recalibrated_at_all() -> None:
    """A model that ranks the site backwards gets no update, not even an intercept (it
    would make the average risk right and leave every ranking wrong): do not use it there."""
    y, p = _site(0.0, 1.0, 2000)
    choice = choose_recalibration(1 - y, p)
    assert (choice.method, choice.intercept, choice.slope) == (RecalibrationMethod.NONE, 0.0, 1.0)
    assert choice.does_not_rank
    assert choice.refused[0].startswith("slope, the fitted slope -")
    assert "is <= 0 and would reverse the model's ranking" in choice.refused[0]
    assert choice.refused[1] == "intercept, an intercept cannot mend a ranking"
    assert choice.reason.startswith(
        "The model does not rank patients at this site (calibration slope -0.98 <= 0 on 2000 "
        "rows, 989 events): not recalibrated, do not use it here."
    )
    assert choice.to_dict()["does_not_rank"] is True
    np.testing.assert_array_equal(choice.apply(p), p)


def test_a_tiny_sample_with_too_few_events_keeps_the_model() -> None:
    y = np.array([1] * 9 + [0] * 30)
    p = np.linspace(0.9, 0.1, 39)  # far off: every case is over-predicted or under-predicted
    choice = choose_recalibration(y, p)
    assert (choice.method, choice.events, choice.tests) == (RecalibrationMethod.NONE, 9, [])
    assert choice.reason.startswith("Model kept as it is: 9 events (the smaller of")
    assert "fewer than the 10 needed" in choice.reason


def test_between_ten_and_twenty_events_only_an_intercept_is_tried() -> None:
    rng = np.random.default_rng(0)
    p = np.linspace(0.6, 0.8, 60)  # average risk 0.7 against 0.25 observed
    y = np.zeros(60, dtype=int)
    y[30 + rng.choice(30, 15, replace=False)] = 1  # the events among the higher risks
    choice = choose_recalibration(y, p)
    assert choice.method == RecalibrationMethod.INTERCEPT
    assert choice.events == 15
    assert choice.refused[0] == "slope, 15 events < 20 needed for a slope"
    assert [t.comparison for t in choice.tests] == ["intercept vs none"]
    assert choice.slope == 1.0
    assert choice.intercept < -1.5


def test_a_flat_risk_gets_the_exact_intercept() -> None:
    y = np.array([1] * 25 + [0] * 75)
    choice = choose_recalibration(y, np.full(100, 0.7))
    assert choice.method == RecalibrationMethod.INTERCEPT
    assert choice.intercept == pytest.approx(np.log(0.25 / 0.75) - np.log(0.7 / 0.3), abs=1e-6)


def test_every_chosen_map_keeps_the_auc() -> None:
    for a, b in ((0.0, 1.0), (1.0, 1.0), (1.0, 0.5), (-0.5, 1.8), (0.0, -1.0)):
        y, p = _site(a, b, 800, seed=3)
        choice = choose_recalibration(y, p)
        assert choice.slope > 0
        assert roc_auc(y, choice.apply(p)) == roc_auc(y, p), (a, b)


def test_bad_options_are_refused() -> None:
    y, p = _site(0.0, 1.0, 100)
    with pytest.raises(DataError, match="Need 0 < alpha < 1"):
        choose_recalibration(y, p, alpha=1.0)
    with pytest.raises(DataError, match="event minima >= 1"):
        choose_recalibration(y, p, min_events_slope=0)
    with pytest.raises(DataError, match="y must hold 0 and 1"):
        choose_recalibration(np.full(10, 2), p[:10])
    alike = choose_recalibration(np.ones(30), p[:30])
    assert (alike.method, alike.events, alike.slope) == (RecalibrationMethod.NONE, 0, 1.0)


def test_bootstrap_intervals_of_the_report() -> None:
    y, p = _site(0.0, 1.0, 300)
    report = validation_report(y, p, n_bootstrap=200, seed=1)
    assert set(report.intervals) == {
        "auc", "brier", "ece", "calibration_in_the_large", "calibration_intercept",
        "calibration_slope",
    }  # fmt: skip
    for name, (lo, hi) in report.intervals.items():
        assert lo is not None
        assert hi is not None
        assert lo < hi, name
        if name != "ece":  # the binned ECE is biased upwards in resamples
            assert lo <= getattr(report, name) <= hi, name
    assert report.bootstrap_replicates == 200
    assert validation_report(y, p, n_bootstrap=200, seed=1) == report
    assert report.to_dict()["intervals"]["auc"] == list(report.intervals["auc"])
    assert report.shown("auc").startswith(f"{report.auc:.3f} (")
    assert validation_report(y, p).intervals == {}
    with pytest.raises(DataError, match="n_bootstrap must be >= 0"):
        validation_report(y, p, n_bootstrap=-1)


def test_bootstrap_weights_count_draws() -> None:
    chunks = list(bootstrap_weights(7, 5, seed=0))
    weights = np.concatenate(chunks)
    assert weights.shape == (5, 7)
    assert weights.sum(axis=1).tolist() == [7.0] * 5
    with pytest.raises(DataError, match="n >= 1"):
        next(bootstrap_weights(0, 5, seed=0))


def test_cleveland_site_with_inverted_labels(cleveland: TabularDataset) -> None:
    """Half of Cleveland trains the model; the other half, with its outcomes coded the wrong
    way round, is the site: the recalibration must not turn the ranking over."""
    X, y = cleveland.X, cleveland.y.to_numpy()
    train = np.arange(len(y)) % 2 == 0
    model = RiskModel(cleveland.feature_types).fit(X[train], y[train])
    site_X, site_y = X[~train].reset_index(drop=True), 1 - y[~train]
    result = external_validation(model, site_X, site_y, recalibration_fraction=0.5)
    assert result.recalibration is not None
    assert result.recalibration.method != RecalibrationMethod.LOGISTIC
    assert result.slope == 1.0
    assert result.recalibration.refused[0].startswith("slope, the fitted slope -")
    assert result.before_on_rest is not None
    assert result.after_on_rest is not None
    assert result.before_on_rest.auc is not None
    assert result.before_on_rest.auc < 0.3
    assert result.after_on_rest.auc == result.before_on_rest.auc
    assert result.to_dict()["recalibration"]["slope"] == 1.0
    assert result.does_not_rank
    assert result.warnings[-1].startswith(
        "The model does not rank patients at external (calibration slope -"
    )
    few = external_validation(model, site_X.head(30), site_y[:30], recalibration_fraction=0.0)
    assert few.before.calibration_slope < 0
    assert not few.does_not_rank  # 30 rows: too few events to tell


def test_cleveland_other_half_is_recalibrated_with_a_positive_slope(
    cleveland: TabularDataset,
) -> None:
    """A model trained on half of Cleveland is under-confident on the other half (slope
    about 1.5, p = 0.014 against the intercept-only update): logistic recalibration."""
    X, y = cleveland.X, cleveland.y.to_numpy()
    train = np.arange(len(y)) % 2 == 0
    model = RiskModel(cleveland.feature_types).fit(X[train], y[train])
    site_X = pd.DataFrame(X[~train]).reset_index(drop=True)
    fitted = RecalibratedModel(model).fit(site_X, y[~train])
    assert fitted.choice_.method == RecalibrationMethod.LOGISTIC
    assert fitted.slope_ == pytest.approx(1.5, abs=0.05)
    risk = model.predict_proba(site_X)[:, 1]
    np.testing.assert_allclose(fitted.predict_proba(site_X)[:, 1], fitted.choice_.apply(risk))
    assert roc_auc(y[~train], fitted.predict_proba(site_X)[:, 1]) == roc_auc(y[~train], risk)
    strict = RecalibratedModel(model, alpha=0.01).fit(site_X, y[~train])
    assert (strict.choice_.method, strict.slope_) == (RecalibrationMethod.NONE, 1.0)


def test_the_reported_24_row_sample_keeps_the_ranking() -> None:
    """Issue 13: 24 recalibration rows whose plain logistic fit has a negative slope (AUC
    0.615 turned into 0.385). Too few events for a slope; the ranking is kept."""
    rng = np.random.default_rng(13)
    p = rng.uniform(0.1, 0.9, 24)
    y = (p < np.median(p)).astype(int)  # more outcomes where the model says less
    order = np.argsort(p)
    y[[order[0], order[-1]]] = y[[order[-1], order[0]]]  # 12 events either way
    assert fit_logistic_calibration(y, p)[1] < 0
    choice = choose_recalibration(y, p)
    assert choice.events == 12
    assert choice.slope == 1.0
    assert choice.refused[0] == "slope, 12 events < 20 needed for a slope"
    assert choice.refused[1].startswith("slope, the fitted slope -")
    assert choice.method == RecalibrationMethod.NONE  # not even an intercept
    assert not choice.does_not_rank  # 12 events cannot establish that
    assert choice.reason.startswith("Not recalibrated: the calibration slope is -")
    assert "on 12 events, too few to tell whether the model ranks" in choice.reason
    assert roc_auc(y, choice.apply(p)) == roc_auc(y, p)


def _revised_site(
    n: int, effect: float, seed: int = 0
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """A model's risks from `x1` alone, and a site where `x2` also moves the outcome."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n),
                          "site": ["a"] * n})  # fmt: skip
    risk = 1 / (1 + np.exp(-frame["x1"].to_numpy()))
    truth = 1 / (1 + np.exp(-(frame["x1"] + effect * frame["x2"]).to_numpy()))
    return frame, (rng.random(n) < truth).astype(int), risk


def test_a_large_site_whose_predictors_act_differently_gets_a_revision() -> None:
    frame, y, risk = _revised_site(3000, effect=1.0)
    choice = choose_recalibration(y, risk, features=frame)
    assert choice.method == RecalibrationMethod.REVISION
    assert choice.revision is not None
    assert choice.revision.columns == ("x1", "x2")  # numeric columns only
    assert [t.comparison for t in choice.tests] == ["revision vs none", "revision vs logistic"]
    coefficients = dict(zip(choice.revision.columns, choice.revision.coefficients, strict=True))
    assert coefficients["x2"] == pytest.approx(1.0, abs=0.2)  # per SD; x2 has SD about 1
    # z is x1 itself here, so only the sum of x1's two terms is identified: about 1
    x1_scale = choice.revision.scale[0]
    assert choice.slope + coefficients["x1"] / x1_scale == pytest.approx(1.0, abs=0.2)
    rest, y_rest, risk_rest = _revised_site(3000, effect=1.0, seed=1)
    after = choice.apply(risk_rest, rest)
    assert roc_auc(y_rest, after) > roc_auc(y_rest, risk_rest) + 0.05
    with pytest.raises(DataError, match="predictors"):
        choice.apply(risk_rest)


def test_a_revision_needs_ten_events_per_coefficient() -> None:
    frame, y, risk = _revised_site(3000, effect=1.0)
    events = int(min(y.sum(), len(y) - y.sum()))
    choice = choose_recalibration(y, risk, features=frame, min_events_per_parameter=events)
    assert choice.method != RecalibrationMethod.REVISION
    assert choice.min_events["revision"] == 4 * events
    assert f"revision, {events} events < {4 * events} needed to refit 2 predictors" in " ".join(
        choice.refused
    )


def test_a_site_where_the_predictors_act_alike_is_not_revised() -> None:
    frame, y, risk = _revised_site(3000, effect=0.0)
    choice = choose_recalibration(y, risk, features=frame)
    assert choice.method == RecalibrationMethod.NONE
    assert choice.tests[0].comparison == "revision vs none"
