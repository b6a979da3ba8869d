"""Survival metrics, checked against scikit-survival, and the proportional-hazards test."""

from __future__ import annotations

import numpy as np
import pytest
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.metrics import concordance_index_censored
from sksurv.nonparametric import kaplan_meier_estimator, nelson_aalen_estimator

from clinsight.data.survival import survival_target
from clinsight.evaluation.proportional_hazards import schoenfeld_test
from clinsight.evaluation.survival import (
    bootstrap_interval,
    harrell_c,
    horizon_calibration,
    kaplan_meier,
    kaplan_meier_band,
    nelson_aalen,
)


def _data(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    time = np.round(rng.exponential(np.exp(-0.8 * x)) * 100)
    censor = np.round(rng.exponential(150, size=n))
    return x, np.minimum(time, censor), time <= censor


def test_kaplan_meier_nelson_aalen_and_harrell_match_scikit_survival() -> None:
    x, time, event = _data()
    times, surv = kaplan_meier(time, event)
    ref_times, ref_surv = kaplan_meier_estimator(event, time)
    assert np.allclose(times, ref_times)
    assert np.allclose(surv, ref_surv)
    assert np.allclose(nelson_aalen(time, event)[1], nelson_aalen_estimator(event, time)[1])
    risk = np.round(x, 1)  # ties in risk and in time
    assert harrell_c(time, event, risk) == pytest.approx(
        concordance_index_censored(event, time, risk)[0], abs=1e-12
    )


def test_harrell_counts_by_hand() -> None:
    # pairs: (1 vs 2) and (1 vs 3) concordant, (2 vs 3) tied in risk, (3 vs any) not comparable
    assert harrell_c([1, 2, 3], [1, 1, 0], [0.9, 0.5, 0.5]) == pytest.approx(2.5 / 3)
    assert harrell_c([1, 2, 3], [1, 1, 0], [0.1, 0.5, 0.9]) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="no comparable pairs"):
        harrell_c([1, 2], [0, 0], [1, 2])


def test_kaplan_meier_band_contains_the_estimate() -> None:
    _, time, event = _data()
    _, surv, low, high = kaplan_meier_band(time, event)
    assert np.all(low <= surv + 1e-12)
    assert np.all(surv <= high + 1e-12)


def test_calibration_of_a_perfect_model_has_slope_one() -> None:
    rng = np.random.default_rng(1)
    risk = np.repeat([0.1, 0.3, 0.5, 0.7, 0.9], 2000)
    event = rng.random(risk.size) < risk
    time = np.where(event, 1.0, 2.0)
    fit = horizon_calibration(time, event, risk, 1.5)
    assert fit.sizes == (2000,) * 5
    assert fit.slope == pytest.approx(1.0, abs=0.05)
    assert fit.intercept == pytest.approx(0.0, abs=0.03)


def test_bootstrap_interval_skips_undefined_resamples() -> None:
    values = np.arange(100.0)
    low, high = bootstrap_interval(lambda rows: float(values[rows].mean()), 100, 200, seed=0)
    assert low is not None
    assert high is not None
    assert low < 49.5 < high
    assert bootstrap_interval(lambda rows: float("x"), 10, 50) == (None, None)


def test_schoenfeld_flags_an_effect_that_fades_and_passes_a_constant_one() -> None:
    rng = np.random.default_rng(2)
    n = 800
    x = rng.binomial(1, 0.5, n).astype(float)
    early = rng.exponential(np.where(x == 1, 0.3, 1.0))  # strong effect early only
    fading = np.where(early < 0.5, early, 0.5 + rng.exponential(1.0, n))
    constant = rng.exponential(np.exp(-0.7 * x))
    for time, violated in ((fading, True), (constant, False)):
        y = survival_target(time, np.ones(n))
        coef = CoxPHSurvivalAnalysis().fit(x[:, None], y).coef_
        test = schoenfeld_test(x[:, None], time, np.ones(n, bool), coef, ["x"])
        assert (test.features["x"][2] < 0.01) is violated
        assert (test.violations == ["x"]) is violated
