"""Baselines on per-variable summaries of the window: last, min, max, mean, count, slope.

Logistic regression (median imputation with missing-value indicators, scaled) and
histogram gradient boosting (which reads the missing values itself), both scikit-learn
estimators over the same summary matrix; plus the summary names, for the model card.
"""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import NDArray
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from clinsight.sequence.binning import STATIC_FEATURES, SequenceArrays

__all__ = [
    "SUMMARIES",
    "gradient_boosting",
    "logistic_regression",
    "summary_features",
    "summary_names",
]

SUMMARIES = ("last", "min", "max", "mean", "count", "slope")


def summary_names(variables: tuple[str, ...]) -> list[str]:
    """Column names of `summary_features`: ``HR.last`` ... then the descriptors."""
    return [f"{v}.{s}" for s in SUMMARIES for v in variables] + list(STATIC_FEATURES)


def summary_features(arrays: SequenceArrays) -> NDArray[np.float64]:
    """(N, 6V + S) summaries of the binned values (NaN where a variable was never observed)."""
    values = arrays.values.astype(np.float64)
    observed = ~np.isnan(values)
    any_seen = observed.any(axis=1)
    steps = values.shape[1]
    last_index = steps - 1 - np.argmax(observed[:, ::-1, :], axis=1)
    last = np.take_along_axis(values, last_index[:, None, :], axis=1)[:, 0, :]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: NaN, as wanted
        low, high, mean = np.nanmin(values, 1), np.nanmax(values, 1), np.nanmean(values, 1)
    last = np.where(any_seen, last, np.nan)
    return np.hstack([
        last, low, high, mean, arrays.counts.astype(np.float64),
        arrays.slopes.astype(np.float64), arrays.static.astype(np.float64),
    ])  # fmt: skip


def logistic_regression(seed: int = 0) -> Pipeline:
    """Median imputation with missing indicators, standard scaling, L2 logistic regression."""
    return make_pipeline(
        SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
        StandardScaler(),
        LogisticRegression(C=0.1, max_iter=2000, random_state=seed),
    )


def gradient_boosting(seed: int = 0) -> HistGradientBoostingClassifier:
    """Histogram gradient boosting with early stopping on an inner 10 % of the training rows."""
    return HistGradientBoostingClassifier(
        learning_rate=0.05, max_iter=500, max_leaf_nodes=15, min_samples_leaf=40,
        l2_regularization=1.0, early_stopping=True, validation_fraction=0.1,
        n_iter_no_change=30, random_state=seed,
    )  # fmt: skip
