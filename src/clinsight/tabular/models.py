"""Risk models: the estimator zoo, the calibrated `RiskModel`, and model selection by repeated CV.

scikit-learn and LightGBM each bring their own OpenMP runtime (two ``libgomp`` copies in
one process); left alone, every fit spins up a full thread team per runtime and
HistGradientBoosting ran about 100x slower here. So every fit and prediction below runs
inside `limit_threads`, which caps all OpenMP and BLAS pools of the process through
threadpoolctl, and the estimators that take a thread count get it explicitly.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    VotingClassifier,
)
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import RepeatedStratifiedKFold, StratifiedKFold, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import ThreadpoolController

from clinsight.data.tabular import FeatureSpec, FeatureType, TaskSpec, coerce_features
from clinsight.errors import DataError, ModelError
from clinsight.tabular.pipeline import (
    FeatureSelector,
    LogOddsClassifier,
    SelectionMethod,
    build_preprocessor,
)

__all__ = [
    "DEFAULT_CANDIDATES",
    "MODEL_NAMES",
    "CalibrationMethod",
    "CandidateScore",
    "ModelName",
    "ModelSelection",
    "RiskModel",
    "build_risk_pipeline",
    "choose_calibration",
    "limit_threads",
    "make_model",
    "select_model",
]

ModelName = Literal["logistic", "gradient_boosting", "lightgbm", "random_forest", "ensemble"]
MODEL_NAMES: tuple[ModelName, ...] = (
    "logistic", "gradient_boosting", "lightgbm", "random_forest", "ensemble",
)  # fmt: skip
CalibrationMethod = Literal["sigmoid", "isotonic", "none"]


@cache
def _thread_pools() -> ThreadpoolController:
    """The process's OpenMP and BLAS runtimes, found once (a scan costs milliseconds).

    By the time a risk model fits or predicts, this module has imported scikit-learn and
    LightGBM, so both OpenMP runtimes and the BLAS are already loaded and found here.
    """
    return ThreadpoolController()


@contextmanager
def limit_threads(n_threads: int) -> Iterator[None]:
    """Cap every OpenMP and BLAS thread pool in the process (all runtimes) to ``n_threads``.

    Raises:
        ModelError: ``n_threads`` is below 1.
    """
    if n_threads < 1:
        raise ModelError(f"n_threads must be at least 1; got {n_threads}.")
    with _thread_pools().limit(limits=n_threads):
        yield


def make_model(name: ModelName, random_state: int = 0, n_threads: int = 1) -> BaseEstimator:
    """A fresh, seeded classifier tuned for small clinical tables (hundreds to thousands of rows).

    Raises:
        ModelError: the name is not one of `MODEL_NAMES`.
    """
    if name == "logistic":
        return LogisticRegression(C=1.0, max_iter=2000)
    if name == "gradient_boosting":
        return HistGradientBoostingClassifier(
            learning_rate=0.05, max_iter=150, max_leaf_nodes=8, min_samples_leaf=20,
            l2_regularization=1.0, early_stopping=False, random_state=random_state,
        )  # fmt: skip
    if name == "lightgbm":
        return LGBMClassifier(
            n_estimators=150, learning_rate=0.05, num_leaves=8, min_child_samples=20,
            reg_lambda=1.0, n_jobs=n_threads, random_state=random_state, verbose=-1,
        )  # fmt: skip
    if name == "random_forest":
        return RandomForestClassifier(
            n_estimators=200, min_samples_leaf=3, max_features="sqrt",
            n_jobs=n_threads, random_state=random_state,
        )  # fmt: skip
    if name == "ensemble":
        members = [
            (member, make_model(member, random_state, n_threads))
            for member in ("logistic", "gradient_boosting", "random_forest")
        ]
        return VotingClassifier(members, voting="soft", n_jobs=1)
    raise ModelError(f"unknown model {name!r}; choose one of {list(MODEL_NAMES)}.")


def build_risk_pipeline(
    feature_types: Mapping[str, FeatureType | str],
    model: ModelName | BaseEstimator = "logistic",
    *,
    categories: Mapping[str, tuple[str, ...]] | None = None,
    selection: SelectionMethod = "none",
    max_features: int | float = 1.0,
    clip: tuple[float, float] = (0.005, 0.995),
    random_state: int = 0,
    n_threads: int = 1,
) -> Pipeline:
    """``preprocess`` → ``select`` → ``model``, unfitted.

    Raises:
        ModelError: the model name is unknown.
    """
    estimator = (
        clone(model)
        if isinstance(model, BaseEstimator)
        else make_model(model, random_state, n_threads)
    )
    if not hasattr(estimator, "decision_function"):
        estimator = LogOddsClassifier(estimator)
    steps: list[tuple[str, Any]] = [
        ("preprocess", build_preprocessor(feature_types, categories, clip)),
        ("select", FeatureSelector(selection, max_features, random_state=random_state)),
        ("model", estimator),
    ]
    return Pipeline(steps)


class RiskModel(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A calibrated binary risk model over a typed DataFrame; ``predict_proba[:, 1]`` is the risk.

    ``feature_types`` maps each input column to numeric/binary/categorical (None: numeric
    dtypes are numeric, the rest categorical). Calibration is fitted by stratified CV with
    ``ensemble=False``, so `pipeline_` is the single model fitted on all rows that
    explanations look into, and the calibrator maps its scores to probabilities.
    """

    def __init__(
        self,
        feature_types: Mapping[str, FeatureType | str] | None = None,
        categories: Mapping[str, tuple[str, ...]] | None = None,
        model: ModelName | BaseEstimator = "logistic",
        selection: SelectionMethod = "none",
        max_features: int | float = 1.0,
        calibration: CalibrationMethod = "sigmoid",
        calibration_folds: int = 5,
        clip: tuple[float, float] = (0.005, 0.995),
        n_threads: int = 1,
        random_state: int = 0,
    ) -> None:
        self.feature_types = feature_types
        self.categories = categories
        self.model = model
        self.selection = selection
        self.max_features = max_features
        self.calibration = calibration
        self.calibration_folds = calibration_folds
        self.clip = clip
        self.n_threads = n_threads
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, y: ArrayLike) -> RiskModel:
        """Fit preprocessing, selection, the model and its calibration, seeded.

        Raises:
            DataError: X is not a DataFrame, lacks a typed column, or y is not 0/1 of both kinds.
            ModelError: the model, calibration method or thread count is invalid.
        """
        if not isinstance(X, pd.DataFrame):
            raise DataError(f"RiskModel needs a pandas DataFrame; got {type(X).__name__}.")
        target = np.asarray(y)
        if target.shape != (len(X),) or not np.isin(target, (0, 1)).all():
            raise DataError(f"y must be {len(X)} labels of 0/1; got shape {target.shape}.")
        if np.unique(target).size < 2:
            raise DataError("y holds a single class; a risk model needs both outcomes.")
        if self.calibration not in ("sigmoid", "isotonic", "none"):
            raise ModelError(
                f"calibration must be sigmoid, isotonic or none; got {self.calibration!r}."
            )
        types = self._types(X)
        pipeline = build_risk_pipeline(
            types, self.model, categories=self.categories, selection=self.selection,
            max_features=self.max_features, clip=self.clip, random_state=self.random_state,
            n_threads=self.n_threads,
        )  # fmt: skip
        frame = X[list(types)]
        with limit_threads(self.n_threads):
            if self.calibration == "none":
                self.pipeline_: Pipeline = pipeline.fit(frame, target)
                self.calibrated_: CalibratedClassifierCV | None = None
            else:
                folds = StratifiedKFold(
                    self.calibration_folds, shuffle=True, random_state=self.random_state
                )
                calibrated = CalibratedClassifierCV(
                    pipeline, method=self.calibration, cv=folds, ensemble=False
                )
                self.calibrated_ = calibrated.fit(frame, target)
                self.pipeline_ = calibrated.calibrated_classifiers_[0].estimator
        self.feature_types_: dict[str, FeatureType] = types
        self.feature_names_in_ = np.asarray(list(types), dtype=object)
        self.n_features_in_ = len(types)
        self.classes_ = np.array([0, 1])
        return self

    def _types(self, X: pd.DataFrame) -> dict[str, FeatureType]:
        if self.feature_types is None:
            return {
                str(c): FeatureType.NUMERIC
                if pd.api.types.is_numeric_dtype(X[c])
                else FeatureType.CATEGORICAL
                for c in X.columns
            }
        absent = [c for c in self.feature_types if c not in X.columns]
        if absent:
            raise DataError(f"column {absent[0]!r} is missing from X; columns: {list(X.columns)}.")
        return {str(c): FeatureType(t) for c, t in self.feature_types.items()}

    def _frame(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self)
        if not isinstance(X, pd.DataFrame):
            raise DataError(f"RiskModel needs a pandas DataFrame; got {type(X).__name__}.")
        known = self.categories or {}
        features = tuple(
            FeatureSpec(name, kind, categories=known.get(name))
            for name, kind in self.feature_types_.items()
        )
        return coerce_features(X, TaskSpec("model input", "", "", "", features))

    def predict_proba(self, X: pd.DataFrame) -> NDArray[np.float64]:
        """Calibrated probabilities, shape (n, 2); column 1 is the risk.

        X is checked and typed like a loaded file (`coerce_features`), so a text value in a
        numeric column or a category outside ``categories`` is refused by row and column.

        Raises:
            DataError: X is not a DataFrame, lacks a model feature, or holds an invalid cell.
            sklearn.exceptions.NotFittedError: the model is not fitted.
        """
        frame = self._frame(X)
        with limit_threads(self.n_threads):
            source = self.calibrated_ if self.calibrated_ is not None else self.pipeline_
            return np.asarray(source.predict_proba(frame), dtype=np.float64)

    def raw_log_odds(self, X: pd.DataFrame) -> NDArray[np.float64]:
        """Log-odds of the uncalibrated full-data model, the space explanations work in.

        The model's own decision function (logistic regression, gradient boosting) or, for
        the others, the logit of their probability (`LogOddsClassifier`).

        Raises:
            DataError: X is not a DataFrame or lacks a model feature.
        """
        frame = self._frame(X)
        with limit_threads(self.n_threads):
            return np.asarray(self.pipeline_.decision_function(frame), dtype=np.float64)

    def predict(self, X: pd.DataFrame) -> NDArray[np.int64]:
        """1 where the calibrated risk is at least 0.5.

        Raises:
            DataError: X is not a DataFrame or lacks a model feature.
        """
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(np.int64)


@dataclass(frozen=True)
class CandidateScore:
    """Cross-validated discrimination of one candidate configuration (uncalibrated)."""

    name: str
    params: dict[str, Any]
    auc_mean: float
    auc_std: float
    brier_mean: float


@dataclass(frozen=True)
class ModelSelection:
    """Every candidate's CV scores, the winner, its calibration, and the winner refitted."""

    scores: tuple[CandidateScore, ...]
    best: CandidateScore
    calibration: CalibrationMethod
    model: RiskModel


DEFAULT_CANDIDATES: dict[str, dict[str, Any]] = {
    "logistic": {"model": "logistic"},
    "gradient_boosting": {"model": "gradient_boosting"},
    "random_forest": {"model": "random_forest"},
    "ensemble": {"model": "ensemble"},
}
"""Configurations `select_model` compares by default (`RiskModel` keyword arguments)."""


def choose_calibration(
    scores: ArrayLike, y: ArrayLike, n_splits: int = 5, random_state: int = 0
) -> CalibrationMethod:
    """Sigmoid or isotonic: whichever gives the lower cross-validated Brier score when fitted
    on out-of-fold model scores (as `CalibratedClassifierCV` fits it). Ties go to sigmoid.

    Raises:
        ValueError: scores and y differ in length or y has a class with < n_splits rows.
    """
    s = np.asarray(scores, dtype=np.float64)
    target = np.asarray(y)
    folds = StratifiedKFold(n_splits, shuffle=True, random_state=random_state)
    brier = {"sigmoid": 0.0, "isotonic": 0.0}
    for fit, held in folds.split(s.reshape(-1, 1), target):
        platt = LogisticRegression(C=1e6).fit(s[fit].reshape(-1, 1), target[fit])
        sigmoid = platt.predict_proba(s[held].reshape(-1, 1))[:, 1]
        isotonic = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip")
        monotone = isotonic.fit(s[fit], target[fit]).predict(s[held])
        brier["sigmoid"] += float(np.sum((sigmoid - target[held]) ** 2))
        brier["isotonic"] += float(np.sum((monotone - target[held]) ** 2))
    return "isotonic" if brier["isotonic"] < brier["sigmoid"] else "sigmoid"


def select_model(
    X: pd.DataFrame,
    y: ArrayLike,
    feature_types: Mapping[str, FeatureType | str] | None = None,
    *,
    categories: Mapping[str, tuple[str, ...]] | None = None,
    candidates: Mapping[str, Mapping[str, Any]] | None = None,
    n_splits: int = 5,
    n_repeats: int = 3,
    calibration: CalibrationMethod | Literal["auto"] = "sigmoid",
    tolerance: float = 0.002,
    random_state: int = 0,
    n_threads: int = 1,
) -> ModelSelection:
    """Pick a candidate by mean AUC over repeated stratified CV, then fit and calibrate it.

    Parsimony: the first (simplest) candidate whose mean AUC is within ``tolerance`` of the
    best one wins, so a logistic regression is kept unless something beats it. The default
    sigmoid calibration (Platt on log-odds) keeps the ranking, so the AUC; ``"auto"`` lets
    the winner's first-repeat out-of-fold scores choose sigmoid or isotonic
    (`choose_calibration`), whose steps can tie patients and cost some AUC.
    Runs sequentially (``n_jobs=1``).

    Raises:
        DataError: the inputs are invalid (see `RiskModel.fit`).
        ModelError: no candidates were given, or one names an unknown model.
    """
    chosen = dict(DEFAULT_CANDIDATES if candidates is None else candidates)
    if not chosen:
        raise ModelError("select_model needs at least one candidate configuration.")
    target = np.asarray(y)
    cv = RepeatedStratifiedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=random_state)
    base: dict[str, Any] = {"feature_types": feature_types, "categories": categories,
            "random_state": random_state, "n_threads": n_threads}  # fmt: skip
    scores, first_repeat = [], {}
    for name, params in chosen.items():
        estimator = RiskModel(**base, calibration="none", **params)
        with limit_threads(n_threads):
            result = cross_validate(
                estimator, X, target, cv=cv, scoring=("roc_auc", "neg_brier_score"), n_jobs=1,
                error_score="raise", return_estimator=True, return_indices=True,
            )  # fmt: skip
            oof = np.zeros(len(target))
            for fitted, test in zip(
                result["estimator"][:n_splits], result["indices"]["test"][:n_splits], strict=True
            ):
                oof[test] = fitted.raw_log_odds(X.iloc[test])
        first_repeat[name] = oof
        aucs = np.asarray(result["test_roc_auc"], dtype=np.float64)
        brier = float(-np.mean(result["test_neg_brier_score"]))
        scores.append(
            CandidateScore(name, dict(params), float(aucs.mean()), float(aucs.std()), brier)
        )
    top = max(s.auc_mean for s in scores)
    best = next(s for s in scores if s.auc_mean >= top - tolerance)
    method: CalibrationMethod = (
        choose_calibration(first_repeat[best.name], target, n_splits, random_state)
        if calibration == "auto"
        else calibration
    )
    model = RiskModel(**base, calibration=method, **best.params).fit(X, target)
    return ModelSelection(scores=tuple(scores), best=best, calibration=method, model=model)
