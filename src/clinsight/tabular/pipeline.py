"""Preprocessing for risk models: outlier clipping, imputation with indicators, encoding, selection.

Every step is a scikit-learn estimator, so a whole risk model is one `Pipeline`
(``preprocess`` → ``select`` → ``model``) that composes with cross-validation and
calibration. `QuantileClipper`, `SkewedLog1p`, `FeatureSelector` and `LogOddsClassifier` pass
``check_estimator``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.feature_selection import SelectorMixin, mutual_info_classif
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils import get_tags
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from clinsight.data.tabular import FeatureType

__all__ = [
    "SELECTION_METHODS",
    "SKEW_TRANSFORMS",
    "FeatureSelector",
    "LogOddsClassifier",
    "QuantileClipper",
    "SelectionMethod",
    "SkewTransform",
    "SkewedLog1p",
    "build_preprocessor",
    "output_sources",
]

SelectionMethod = Literal["none", "mutual_info", "l1", "permutation"]
SELECTION_METHODS: tuple[SelectionMethod, ...] = ("none", "mutual_info", "l1", "permutation")
SkewTransform = Literal["none", "log1p"]
SKEW_TRANSFORMS: tuple[SkewTransform, ...] = ("none", "log1p")


class QuantileClipper(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Clip each column to its training quantiles, so outliers cannot dominate a fit.

    Missing values (NaN) pass through untouched for the imputer that follows.
    """

    def __init__(self, lower: float = 0.005, upper: float = 0.995) -> None:
        self.lower = lower
        self.upper = upper

    def fit(self, X: ArrayLike, y: ArrayLike | None = None) -> QuantileClipper:
        """Learn the per-column clipping bounds.

        Raises:
            ValueError: the quantiles are not 0 <= lower < upper <= 1, or X is not numeric.
        """
        if not 0.0 <= self.lower < self.upper <= 1.0:
            raise ValueError(
                f"QuantileClipper needs 0 <= lower < upper <= 1; got {self.lower}, {self.upper}."
            )
        data = validate_data(self, X, ensure_all_finite="allow-nan", dtype=np.float64)
        with np.errstate(all="ignore"):
            bounds = np.nanquantile(data, [self.lower, self.upper], axis=0)
        self.lower_bounds_: NDArray[np.float64] = np.nan_to_num(bounds[0], nan=-np.inf)
        self.upper_bounds_: NDArray[np.float64] = np.nan_to_num(bounds[1], nan=np.inf)
        return self

    def transform(self, X: ArrayLike) -> NDArray[np.float64]:
        """Clip X to the fitted bounds (NaN stays NaN).

        Raises:
            ValueError: X has a different number of columns than at fit time.
        """
        check_is_fitted(self)
        data = validate_data(self, X, ensure_all_finite="allow-nan", dtype=np.float64, reset=False)
        return np.asarray(np.clip(data, self.lower_bounds_, self.upper_bounds_), dtype=np.float64)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags


class SkewedLog1p(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """``log1p`` of every column that is non-negative and right-skewed in training (sample
    skewness above ``threshold``); other columns pass unchanged, NaN stays NaN.

    A monotone transform, so it changes what a linear or neural model can fit (counts and
    concentrations such as positive lymph nodes or receptor levels act on a log scale)
    and leaves the order of the rows, which trees split on, as it was.
    """

    def __init__(self, threshold: float = 1.0) -> None:
        self.threshold = threshold

    def fit(self, X: ArrayLike, y: ArrayLike | None = None) -> SkewedLog1p:
        """Choose the columns to transform.

        Raises:
            ValueError: X is not numeric.
        """
        data = validate_data(self, X, ensure_all_finite="allow-nan", dtype=np.float64)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column
            centred = data - np.nanmean(data, axis=0)
            spread = np.nanstd(data, axis=0)
            skew = np.nanmean(centred**3, axis=0) / np.where(spread > 0, spread, np.inf) ** 3
            lowest = np.nanmin(np.where(np.isnan(data), np.inf, data), axis=0)
        self.skewness_: NDArray[np.float64] = np.nan_to_num(skew)
        self.columns_: NDArray[np.bool_] = (lowest >= 0) & (self.skewness_ > self.threshold)
        return self

    def transform(self, X: ArrayLike) -> NDArray[np.float64]:
        """``log1p`` of the chosen columns (negative values there, unseen in training, are
        floored at 0 first).

        Raises:
            ValueError: X has a different number of columns than at fit time.
        """
        check_is_fitted(self)
        data = validate_data(self, X, ensure_all_finite="allow-nan", dtype=np.float64, reset=False)
        out = data.copy()
        out[:, self.columns_] = np.log1p(np.maximum(data[:, self.columns_], 0.0))
        return np.asarray(out, dtype=np.float64)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags


class FeatureSelector(SelectorMixin, BaseEstimator):  # type: ignore[misc]
    """Keep the most informative columns by mutual information, L1 weights or permutation.

    ``max_features`` is a count (int) or a fraction of the columns (float in (0, 1]);
    ``"l1"`` also drops columns whose L1-penalised coefficient is zero (keeping at least one),
    and ``"permutation"`` scores columns by the AUC lost when each is shuffled on a 30 %
    stratified hold-out of the training rows.
    """

    def __init__(
        self,
        method: SelectionMethod = "mutual_info",
        max_features: int | float = 1.0,
        C: float = 0.1,
        random_state: int | None = 0,
    ) -> None:
        self.method = method
        self.max_features = max_features
        self.C = C
        self.random_state = random_state

    def fit(self, X: ArrayLike, y: ArrayLike) -> FeatureSelector:
        """Score every column and choose the ones kept.

        Raises:
            ValueError: the method or ``max_features`` is invalid, or y is not binary.
        """
        if self.method not in SELECTION_METHODS:
            raise ValueError(f"method must be one of {SELECTION_METHODS}; got {self.method!r}.")
        data, target = validate_data(self, X, y, dtype=np.float64)
        if type_of_target(target, raise_unknown=True) not in ("binary", "multiclass"):
            raise ValueError(f"FeatureSelector needs class labels as y; got {target.dtype}.")
        if data.shape[0] < 2:
            raise ValueError("FeatureSelector needs at least two rows; got n_samples = 1.")
        n = data.shape[1]
        keep = self._count(n)
        scores = self._scores(data, target)
        self.scores_: NDArray[np.float64] = scores
        order = np.argsort(-scores, kind="stable")[:keep]
        mask = np.zeros(n, dtype=bool)
        mask[order] = True
        if self.method == "l1" and np.any(scores > 0):
            mask &= scores > 0
        self.support_: NDArray[np.bool_] = mask
        return self

    def _count(self, n: int) -> int:
        k = self.max_features
        if isinstance(k, bool) or not isinstance(k, int | float) or k <= 0:
            raise ValueError(f"max_features must be a positive count or fraction; got {k!r}.")
        if isinstance(k, float):
            if k > 1.0:
                raise ValueError(f"a fractional max_features must be at most 1; got {k}.")
            return max(1, round(k * n))
        return min(k, n)

    def _scores(self, X: NDArray[np.float64], y: NDArray[Any]) -> NDArray[np.float64]:
        if self.method == "none":
            return np.ones(X.shape[1])
        if self.method == "mutual_info":
            mi = mutual_info_classif(X, y, random_state=self.random_state)
            return np.asarray(mi, dtype=np.float64)
        if self.method == "l1":
            scaled = StandardScaler().fit_transform(X)
            lasso = LogisticRegression(C=self.C, l1_ratio=1.0, solver="saga", max_iter=5000)
            lasso.fit(scaled, y)
            return np.asarray(np.abs(lasso.coef_).max(axis=0), dtype=np.float64)
        _, counts = np.unique(y, return_counts=True)
        stratify = y if counts.min() >= 2 and len(y) >= 10 else None
        X_fit, X_hold, y_fit, y_hold = train_test_split(
            X, y, test_size=0.3, stratify=stratify, random_state=self.random_state
        )
        probe = HistGradientBoostingClassifier(max_iter=50, random_state=self.random_state)
        probe.fit(X_fit, y_fit)
        result = permutation_importance(
            probe, X_hold, y_hold, n_repeats=5, random_state=self.random_state
        )
        return np.asarray(result.importances_mean, dtype=np.float64)

    def _get_support_mask(self) -> NDArray[np.bool_]:
        check_is_fitted(self)
        return self.support_

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags


class LogOddsClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Gives a probability-only classifier a ``decision_function``: its log-odds.

    `CalibratedClassifierCV` fits Platt scaling on the decision function when there is one,
    else on the raw probability, where ``sigmoid(a * p + b)`` cannot even express the
    identity; on log-odds it is the logistic recalibration ``a + b * logit(p)``.
    """

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator

    def fit(self, X: Any, y: ArrayLike) -> LogOddsClassifier:
        """Fit a clone of the wrapped classifier."""
        self.estimator_ = clone(self.estimator).fit(X, y)
        self.classes_ = self.estimator_.classes_
        if hasattr(self.estimator_, "n_features_in_"):
            self.n_features_in_ = self.estimator_.n_features_in_
        return self

    def predict_proba(self, X: Any) -> NDArray[np.float64]:
        """The wrapped classifier's probabilities."""
        check_is_fitted(self)
        return np.asarray(self.estimator_.predict_proba(X), dtype=np.float64)

    def predict(self, X: Any) -> NDArray[Any]:
        """The wrapped classifier's labels."""
        check_is_fitted(self)
        return np.asarray(self.estimator_.predict(X))

    def decision_function(self, X: Any) -> NDArray[np.float64]:
        """Log-odds of the positive class (two classes) or log-probabilities (more), with
        probabilities clipped to 1e-9 from 0 and 1."""
        p = np.clip(self.predict_proba(X), 1e-9, 1 - 1e-9)
        if p.shape[1] == 2:
            return np.asarray(np.log(p[:, 1] / p[:, 0]), dtype=np.float64)
        return np.asarray(np.log(p), dtype=np.float64)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags = get_tags(self.estimator).input_tags
        return tags


def build_preprocessor(
    feature_types: Mapping[str, FeatureType | str],
    categories: Mapping[str, tuple[str, ...]] | None = None,
    clip: tuple[float, float] = (0.005, 0.995),
    skewed: SkewTransform = "none",
) -> ColumnTransformer:
    """Column-wise preprocessing of a typed DataFrame into one numeric matrix.

    Numeric: quantile clipping → (with ``skewed="log1p"``, `SkewedLog1p`) → median
    imputation → standard scaling. Binary: most-frequent
    imputation. Categorical: most-frequent imputation → one-hot (known categories when given).
    Plus one missing-value indicator column for every feature that had gaps in training.

    Raises:
        ValueError: a feature type or `skewed` is unknown, or there are no features.
    """
    if skewed not in SKEW_TRANSFORMS:
        raise ValueError(f"skewed must be one of {SKEW_TRANSFORMS}; got {skewed!r}.")
    kinds = {name: FeatureType(kind) for name, kind in feature_types.items()}
    if not kinds:
        raise ValueError("build_preprocessor needs at least one feature.")
    numeric = [n for n, k in kinds.items() if k is FeatureType.NUMERIC]
    binary = [n for n, k in kinds.items() if k is FeatureType.BINARY]
    categorical = [n for n, k in kinds.items() if k is FeatureType.CATEGORICAL]
    known = categories or {}
    steps: list[tuple[str, Any, list[str]]] = []
    if numeric:
        numeric_steps = Pipeline(
            [
                ("clip", QuantileClipper(*clip)),
                *([("log1p", SkewedLog1p())] if skewed == "log1p" else []),
                ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                ("scale", StandardScaler()),
            ]
        )
        steps.append(("numeric", numeric_steps, numeric))
    if binary:
        steps.append(("binary", SimpleImputer(strategy="most_frequent"), binary))
    if categorical:
        onehot = OneHotEncoder(
            categories=[list(known[c]) for c in categorical]
            if all(c in known for c in categorical)
            else "auto",
            handle_unknown="ignore",
            sparse_output=False,
        )
        encode = Pipeline([("impute", SimpleImputer(strategy="most_frequent")), ("onehot", onehot)])
        steps.append(("categorical", encode, categorical))
    indicator = MissingIndicator(features="missing-only", error_on_new=False)
    steps.append(("missing", indicator, list(kinds)))
    return ColumnTransformer(steps, remainder="drop", sparse_threshold=0.0)


def output_sources(preprocessor: ColumnTransformer) -> list[str]:
    """The input feature behind each output column of a fitted `build_preprocessor` result.

    Raises:
        sklearn.exceptions.NotFittedError: the preprocessor is not fitted.
    """
    check_is_fitted(preprocessor)
    sources: list[str] = []
    for name, fitted, columns in preprocessor.transformers_:
        if name == "remainder":
            continue
        if name == "categorical":
            onehot = fitted.named_steps["onehot"]
            for column, cats in zip(columns, onehot.categories_, strict=True):
                sources.extend([column] * len(cats))
        elif name == "missing":
            sources.extend(columns[i] for i in fitted.features_)
        else:
            sources.extend(columns)
    return sources
