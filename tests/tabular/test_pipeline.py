"""Preprocessing estimators: scikit-learn contract, clipping, selection, column bookkeeping."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.utils.estimator_checks import check_estimator

from clinsight.data.tabular import FeatureType
from clinsight.tabular.models import limit_threads
from clinsight.tabular.pipeline import (
    FeatureSelector,
    LogOddsClassifier,
    QuantileClipper,
    SkewedLog1p,
    build_preprocessor,
    output_sources,
)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.SkipTestWarning")
@pytest.mark.parametrize(
    "estimator",
    [
        QuantileClipper(),
        SkewedLog1p(),
        FeatureSelector("mutual_info", 0.5),
        FeatureSelector("l1"),
        FeatureSelector("permutation", 2),
        FeatureSelector("none"),
        LogOddsClassifier(RandomForestClassifier(n_estimators=10, random_state=0)),
    ],
    ids=["clipper", "skewed_log1p", "mutual_info", "l1", "permutation", "none", "log_odds"],
)
def test_passes_check_estimator(estimator: object) -> None:
    with limit_threads(1):
        results = check_estimator(estimator, on_fail=None)
    failed = [r["check_name"] for r in results if r["status"] == "failed"]
    assert failed == []


def test_clipper_uses_training_quantiles_and_keeps_nan() -> None:
    train = np.r_[np.arange(101.0), np.nan].reshape(-1, 1)
    clipper = QuantileClipper(0.1, 0.9).fit(train)
    assert clipper.lower_bounds_.tolist() == [10.0]
    assert clipper.upper_bounds_.tolist() == [90.0]
    out = clipper.transform(np.array([[-5.0], [50.0], [500.0], [np.nan]]))
    assert out[:3, 0].tolist() == [10.0, 50.0, 90.0]
    assert np.isnan(out[3, 0])


def test_clipper_rejects_bad_quantiles() -> None:
    with pytest.raises(ValueError, match=r"0 <= lower < upper <= 1; got 0\.9, 0\.1"):
        QuantileClipper(0.9, 0.1).fit(np.ones((3, 1)))


def _informative(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 400)
    signal = np.column_stack([y + rng.normal(0, 0.5, 400), -y + rng.normal(0, 0.5, 400)])
    return np.column_stack([signal, rng.normal(size=(400, 4))]), y


@pytest.mark.parametrize("method", ["mutual_info", "l1", "permutation"])
def test_selector_keeps_the_informative_columns(method: str) -> None:
    X, y = _informative()
    with limit_threads(1):
        selector = FeatureSelector(method, max_features=2).fit(X, y)  # type: ignore[arg-type]
    assert selector.get_support().tolist() == [True, True, False, False, False, False]
    assert selector.transform(X).shape == (400, 2)


def test_selector_fraction_and_invalid_counts() -> None:
    X, y = _informative()
    assert FeatureSelector("none", 0.5).fit(X, y).get_support().sum() == 3
    with pytest.raises(ValueError, match="max_features must be a positive count"):
        FeatureSelector("none", 0).fit(X, y)
    with pytest.raises(ValueError, match="method must be one of"):
        FeatureSelector("chi2").fit(X, y)  # type: ignore[arg-type]


def test_preprocessor_columns_and_their_sources() -> None:
    frame = pd.DataFrame(
        {
            "a": [1.0, 2.0, np.nan, 4.0],
            "b": [0.0, 1.0, 1.0, np.nan],
            "c": ["x", "y", np.nan, "x"],
        }
    ).astype({"c": object})
    types = {"a": FeatureType.NUMERIC, "b": FeatureType.BINARY, "c": FeatureType.CATEGORICAL}
    pre = build_preprocessor(types, {"c": ("x", "y", "z")}, clip=(0.0, 1.0)).fit(frame)
    out = pre.transform(frame)
    assert output_sources(pre) == ["a", "b", "c", "c", "c", "a", "b", "c"]
    scaled_a = (np.array([1.0, 2.0, 2.0, 4.0]) - 2.25) / np.std([1.0, 2.0, 2.0, 4.0])
    np.testing.assert_allclose(out[:, 0], scaled_a)
    assert out[:, 1].tolist() == [0.0, 1.0, 1.0, 1.0]
    assert out[:, 2:5].tolist() == [[1, 0, 0], [0, 1, 0], [1, 0, 0], [1, 0, 0]]
    assert out[:, 5:].tolist() == [[0, 0, 0], [0, 0, 0], [1, 0, 1], [0, 1, 0]]


def test_log_odds_wrapper_gives_the_logit_of_the_probability() -> None:
    X, y = _informative()
    wrapped = LogOddsClassifier(RandomForestClassifier(n_estimators=20, random_state=0)).fit(X, y)
    p = np.clip(wrapped.predict_proba(X[:5])[:, 1], 1e-9, 1 - 1e-9)
    np.testing.assert_allclose(wrapped.decision_function(X[:5]), np.log(p / (1 - p)))
    assert wrapped.n_features_in_ == 6


def test_skewed_log1p_transforms_only_skewed_non_negative_columns() -> None:
    rng = np.random.default_rng(0)
    skewed = rng.exponential(5.0, 200) ** 2
    symmetric = rng.normal(50.0, 5.0, 200)
    negative = skewed - 10.0
    train = np.column_stack([skewed, symmetric, negative])
    train[3, 0] = np.nan
    transformer = SkewedLog1p().fit(train)
    assert transformer.columns_.tolist() == [True, False, False]
    out = transformer.transform(train)
    assert np.isnan(out[3, 0])
    assert np.allclose(out[:, 0][~np.isnan(out[:, 0])], np.log1p(skewed[~np.isnan(train[:, 0])]))
    assert np.array_equal(out[:, 1:], train[:, 1:])
    assert transformer.transform([[-1.0, 0.0, 0.0]])[0, 0] == 0.0
    with pytest.raises(ValueError, match="skewed must be one of"):
        build_preprocessor({"a": "numeric"}, skewed="sqrt")  # type: ignore[arg-type]
