"""Survival models on the risk pipeline's preprocessing, and their selection by repeated CV.

`SurvivalModel` is one scikit-learn estimator: `build_preprocessor` (clipping, imputation
with missing-value indicators, scaling, one-hot) followed by one of Cox PH, elastic-net
Cox (`CoxnetCV`), a random survival forest, gradient-boosted Cox, the DeepSurv-style
`NeuralCoxSurvival`, or a `RankEnsembleSurvival` of the non-neural ones. It predicts a
risk score and survival probabilities at any times, and, when fitted with
``band_refits``, a pointwise band from that many refits on bootstrap resamples.
`select_survival_model` compares configurations (and, if asked, their rank ensembles) on
the same repeated stratified folds by Uno's C and keeps the simplest within ``tolerance``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator
from sklearn.model_selection import RepeatedStratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from clinsight.data.survival import outcome_fields
from clinsight.data.tabular import FeatureType
from clinsight.errors import DataError, ModelError
from clinsight.tabular.models import limit_threads
from clinsight.tabular.pipeline import SkewTransform, build_preprocessor
from clinsight.tabular.survival_estimators import (
    CoxnetCV,
    NeuralCoxSurvival,
    RankEnsembleSurvival,
    percentile_of,
    step_values,
)

__all__ = [
    "DEFAULT_SURVIVAL_CANDIDATES",
    "ENSEMBLE",
    "ENSEMBLE_MEMBERS",
    "SURVIVAL_CANDIDATES",
    "SURVIVAL_MODELS",
    "SURVIVAL_VARIANTS",
    "TREE_MODELS",
    "SurvivalCandidate",
    "SurvivalModel",
    "SurvivalModelName",
    "SurvivalSelection",
    "check_structured",
    "make_survival_estimator",
    "select_survival_model",
    "step_values",
    "survival_folds",
]

SurvivalModelName = Literal[
    "cox", "coxnet", "random_survival_forest", "gradient_boosting", "neural_cox"
]
SURVIVAL_MODELS: tuple[SurvivalModelName, ...] = (
    "cox", "coxnet", "random_survival_forest", "gradient_boosting", "neural_cox",
)  # fmt: skip
ENSEMBLE = "ensemble"
"""The model name of a `RankEnsembleSurvival` of ``members`` (see `make_survival_estimator`)."""
ENSEMBLE_MEMBERS: frozenset[str] = frozenset(
    {"cox", "coxnet", "random_survival_forest", "gradient_boosting"}
)
"""Models an ensemble may hold (the network is left out: its weights are stored apart)."""
TREE_MODELS: frozenset[str] = frozenset({"random_survival_forest", "gradient_boosting"})
"""Models whose fit depends on their inputs' order alone (monotone transforms aside)."""


def make_survival_estimator(
    name: str, random_state: int = 0, n_trees: int = 200, **params: Any
) -> Any:
    """A fresh survival estimator by name (``params`` override its defaults).

    ``ensemble`` takes ``members``: a list of ``{"model": name, "params": {...}}`` from
    `ENSEMBLE_MEMBERS`, each built here with the same seed and tree count.

    Raises:
        ModelError: `name` is not one of `SURVIVAL_MODELS` or ``ensemble``, or an ensemble
            member is not one of `ENSEMBLE_MEMBERS`.
    """
    from sksurv.ensemble import GradientBoostingSurvivalAnalysis, RandomSurvivalForest
    from sksurv.linear_model import CoxPHSurvivalAnalysis

    if name == "cox":
        return CoxPHSurvivalAnalysis(**{"alpha": 1e-4, "ties": "breslow", **params})
    if name == "coxnet":
        return CoxnetCV(**{"random_state": random_state, **params})
    if name == "random_survival_forest":
        defaults = {"n_estimators": n_trees, "min_samples_leaf": 15, "max_features": "sqrt",
                    "n_jobs": 1, "random_state": random_state}  # fmt: skip
        return RandomSurvivalForest(**{**defaults, **params})
    if name == "gradient_boosting":
        defaults = {"n_estimators": n_trees, "learning_rate": 0.05, "max_depth": 2,
                    "subsample": 0.8, "random_state": random_state}  # fmt: skip
        return GradientBoostingSurvivalAnalysis(**{**defaults, **params})
    if name == "neural_cox":
        return NeuralCoxSurvival(**{"random_state": random_state, **params})
    if name == ENSEMBLE:
        members = list(params.get("members", ()))
        outside = [m.get("model") for m in members if m.get("model") not in ENSEMBLE_MEMBERS]
        if outside or len(members) < 2:
            raise ModelError(
                f"An ensemble needs two or more members from "
                f"{', '.join(sorted(ENSEMBLE_MEMBERS))}; got {outside or members}."
            )
        built = [(str(m["model"]), make_survival_estimator(str(m["model"]), random_state,
                                                           n_trees, **dict(m.get("params", {}))))
                 for m in members]  # fmt: skip
        return RankEnsembleSurvival(built)
    raise ModelError(f"Unknown survival model {name!r}; choose from "
                     f"{', '.join(SURVIVAL_MODELS)} or {ENSEMBLE}.")  # fmt: skip


def check_structured(y: Any) -> NDArray[Any]:
    """`y` as scikit-survival's structured (event, time) array.

    Raises:
        DataError: y is not a structured array of an event flag and a time.
    """
    target = np.asarray(y)
    outcome_fields(target)
    return target


class SurvivalModel(BaseEstimator):  # type: ignore[misc]
    """Preprocessing plus one survival estimator, as one scikit-learn estimator
    (``skewed="log1p"``: skewed non-negative numeric inputs on a log scale, `SkewedLog1p`)."""

    def __init__(
        self,
        model: str = "coxnet",
        feature_types: Mapping[str, FeatureType | str] | None = None,
        categories: Mapping[str, tuple[str, ...]] | None = None,
        params: Mapping[str, Any] | None = None,
        n_trees: int = 200,
        band_refits: int = 0,
        random_state: int = 0,
        n_threads: int = 1,
        skewed: SkewTransform = "none",
    ) -> None:
        self.model = model
        self.feature_types = feature_types
        self.categories = categories
        self.params = params
        self.n_trees = n_trees
        self.band_refits = band_refits
        self.random_state = random_state
        self.n_threads = n_threads
        self.skewed = skewed

    def _pipeline(self, types: Mapping[str, FeatureType], seed: int, n_trees: int) -> Pipeline:
        estimator = make_survival_estimator(self.model, seed, n_trees, **dict(self.params or {}))
        preprocess = build_preprocessor(types, self.categories, skewed=self.skewed)
        return Pipeline([("preprocess", preprocess), ("model", estimator)])

    def fit(self, X: pd.DataFrame, y: Any) -> SurvivalModel:
        """Fit the pipeline (and the band's bootstrap refits, forests with a tenth of the
        trees each).

        Raises:
            DataError: X is not a DataFrame or lacks a feature; y is malformed.
            ModelError: the model name is unknown.
        """
        if not isinstance(X, pd.DataFrame):
            raise DataError(f"SurvivalModel needs a pandas DataFrame; got {type(X).__name__}.")
        target = check_structured(y)
        types = self._types(X)
        frame = X[list(types)]
        with limit_threads(self.n_threads):
            self.pipeline_: Pipeline = self._pipeline(types, self.random_state, self.n_trees)
            self.pipeline_.fit(frame, target)
            rng = np.random.default_rng(self.random_state)
            self.band_: list[Pipeline] = []
            for i in range(self.band_refits):
                rows = rng.integers(0, len(frame), len(frame))
                refit = self._pipeline(
                    types, self.random_state + 1 + i, max(10, self.n_trees // 10)
                )
                self.band_.append(refit.fit(frame.iloc[rows], target[rows]))
        self.feature_types_: dict[str, FeatureType] = types
        self.feature_names_in_ = np.asarray(list(types), dtype=object)
        self.n_features_in_ = len(types)
        self.max_time_ = float(target[outcome_fields(target)[1]].max())
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
            raise DataError(f"SurvivalModel needs a pandas DataFrame; got {type(X).__name__}.")
        return X[list(self.feature_types_)]

    def predict(self, X: pd.DataFrame) -> NDArray[np.float64]:
        """Risk scores (higher: earlier event), the order concordance is measured on."""
        with limit_threads(self.n_threads):
            return np.asarray(self.pipeline_.predict(self._frame(X)), dtype=np.float64)

    @staticmethod
    def _survival(pipeline: Pipeline, frame: pd.DataFrame, times: ArrayLike) -> NDArray[Any]:
        values = np.asarray(pipeline.predict_survival_function(frame, return_array=True))
        grid = np.asarray(pipeline.named_steps["model"].unique_times_, dtype=np.float64)
        return step_values(grid, values, times)

    def predict_survival(self, X: pd.DataFrame, times: ArrayLike) -> NDArray[np.float64]:
        """Survival probabilities at `times` (days), shape (n, len(times))."""
        frame = self._frame(X)
        with limit_threads(self.n_threads):
            return self._survival(self.pipeline_, frame, times)

    def predict_band(
        self, X: pd.DataFrame, times: ArrayLike, level: float = 0.95
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Pointwise `level` band at `times`: the percentile spread of the bootstrap refits'
        survival around their median, centred on this model's estimate (so it contains it).

        Raises:
            ModelError: the model was fitted without ``band_refits``.
        """
        frame = self._frame(X)
        if not self.band_:
            raise ModelError("This survival model was fitted without band refits.")
        with limit_threads(self.n_threads):
            curves = np.stack([self._survival(p, frame, times) for p in self.band_])
        tail = (1 - level) / 2 * 100
        low, middle, high = np.percentile(curves, [tail, 50, 100 - tail], axis=0)
        estimate = self.predict_survival(X, times)
        return (np.clip(estimate + low - middle, 0.0, 1.0),
                np.clip(estimate + high - middle, 0.0, 1.0))  # fmt: skip

    def design(self, X: pd.DataFrame) -> NDArray[np.float64]:
        """The preprocessed design matrix the estimator sees."""
        return np.asarray(self.pipeline_.named_steps["preprocess"].transform(self._frame(X)))


@dataclass(frozen=True)
class SurvivalCandidate:
    """Cross-validated Uno's C of one configuration: mean and per repeat (NaN, with the
    reason in `failed`, where a fit broke down, e.g. unpenalised Cox on more inputs than
    the events support)."""

    name: str
    params: dict[str, Any]
    uno_mean: float
    uno_repeats: tuple[float, ...]
    harrell_mean: float
    failed: str | None = None


@dataclass(frozen=True)
class SurvivalSelection:
    """Every candidate's scores, the winner and the winner refitted on all rows."""

    scores: tuple[SurvivalCandidate, ...]
    best: SurvivalCandidate
    model: SurvivalModel


DEFAULT_SURVIVAL_CANDIDATES: dict[str, dict[str, Any]] = {
    name: {"model": name} for name in SURVIVAL_MODELS
}
"""Configurations `select_survival_model` compares by default (simplest first)."""

SURVIVAL_VARIANTS: dict[str, dict[str, Any]] = {
    "cox_log1p": {"model": "cox", "skewed": "log1p"},
    "coxnet_log1p": {"model": "coxnet", "skewed": "log1p"},
    "random_survival_forest_leaf30": {
        "model": "random_survival_forest", "params": {"min_samples_leaf": 30},
    },
    "gradient_boosting_stumps": {
        "model": "gradient_boosting", "params": {"max_depth": 1, "learning_rate": 0.1},
    },
    "gradient_boosting_depth3": {"model": "gradient_boosting", "params": {"max_depth": 3}},
    "neural_cox_log1p": {"model": "neural_cox", "skewed": "log1p"},
}  # fmt: skip
"""Named variants a selection may also compare: the linear and neural models with skewed
inputs on a log scale (`SkewedLog1p`); a forest of coarser leaves (30 rows, not 15);
boosting of stumps (an additive model) at learning rate 0.1, and of depth 3 (not 2).
Not in the default: in nested CV on GBSG2, WHAS500 and the veterans' lung cancer trial,
selecting among them as well scored lower (Uno's C by 0.002) than among the five
defaults, higher only on the 198-patient gene cohort (benchmarks/README.md, survival and
survival_grid)."""

SURVIVAL_CANDIDATES: dict[str, dict[str, Any]] = {
    **{name: {"model": name} for name in SURVIVAL_MODELS}, **SURVIVAL_VARIANTS,
}  # fmt: skip
"""Every named configuration (the default grid first), for ``--candidates`` by name."""


def survival_folds(
    event: ArrayLike, n_splits: int, n_repeats: int, seed: int
) -> list[tuple[NDArray[np.intp], NDArray[np.intp]]]:
    """The (fit, held) row indices of repeated K-fold stratified on the event flag."""
    flags = np.asarray(event, dtype=int)
    cv = RepeatedStratifiedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=seed)
    return list(cv.split(np.zeros(len(flags)), flags))


def select_survival_model(
    X: pd.DataFrame,
    y: Any,
    feature_types: Mapping[str, FeatureType | str] | None = None,
    *,
    categories: Mapping[str, tuple[str, ...]] | None = None,
    candidates: Mapping[str, Mapping[str, Any]] | None = None,
    n_splits: int = 5,
    n_repeats: int = 3,
    tolerance: float = 0.002,
    ensembles: bool = False,
    band_refits: int = 0,
    random_state: int = 0,
) -> SurvivalSelection:
    """Pick a candidate by mean Uno's C over repeated stratified CV, then refit it on all rows.

    Uno's C is truncated at the 80th percentile of the training fold's follow-up. With
    `ensembles`, every rank ensemble (`RankEnsembleSurvival`) of two or more models from
    `ENSEMBLE_MEMBERS`, each at its best-scoring variant, is scored too, on the same folds
    from the members' held-out risks (no extra fits), after the single models. The first
    candidate (in that order) within `tolerance` of the best mean wins; a candidate whose
    fit breaks down numerically is kept in the scores as failed.

    Raises:
        DataError: y is malformed.
        ModelError: no candidate, one names an unknown model, or every candidate failed.
    """
    target = check_structured(y)
    chosen = dict(DEFAULT_SURVIVAL_CANDIDATES if candidates is None else candidates)
    if not chosen:
        raise ModelError("select_survival_model needs at least one candidate configuration.")
    folds = survival_folds(target[outcome_fields(target)[0]], n_splits, n_repeats, random_state)
    base: dict[str, Any] = {"feature_types": feature_types, "categories": categories,
                            "random_state": random_state}  # fmt: skip
    scores, ranks = [], {}
    for name, params in chosen.items():
        held_risks, held_ranks = [], []
        try:
            for fit, held in folds:
                model = SurvivalModel(**base, **params).fit(X.iloc[fit], target[fit])
                held_risks.append(model.predict(X.iloc[held]))
                if ensembles:
                    reference = np.sort(model.predict(X.iloc[fit]))
                    held_ranks.append(percentile_of(reference, held_risks[-1]))
        except (ArithmeticError, np.linalg.LinAlgError) as exc:
            nan = float("nan")
            scores.append(SurvivalCandidate(name, dict(params), nan, (nan,) * n_repeats, nan,
                                            f"{type(exc).__name__}: {exc}"))  # fmt: skip
            continue
        ranks[name] = held_ranks
        scores.append(_candidate(name, dict(params), held_risks, target, folds, n_repeats))
    if ensembles:
        scores += _ensembles(chosen, ranks, list(scores), target, folds, n_repeats)
    usable = [s for s in scores if s.failed is None]
    if not usable:
        raise ModelError(f"every candidate failed to fit: {scores[0].failed}")
    top = max(s.uno_mean for s in usable)
    best = next(s for s in usable if s.uno_mean >= top - tolerance)
    model = SurvivalModel(**base, band_refits=band_refits, **best.params).fit(X, target)
    return SurvivalSelection(tuple(scores), best, model)


Folds = list[tuple[NDArray[np.intp], NDArray[np.intp]]]


def _candidate(
    name: str,
    params: dict[str, Any],
    held_risks: list[NDArray[np.float64]],
    target: NDArray[Any],
    folds: Folds,
    n_repeats: int,
) -> SurvivalCandidate:
    """Uno's and Harrell's C of one candidate from its held-out risks on each fold."""
    from sksurv.metrics import concordance_index_censored, concordance_index_ipcw

    event_name, time_name = outcome_fields(target)
    uno, harrell = np.zeros(len(folds)), np.zeros(len(folds))
    for i, ((fit, held), risk) in enumerate(zip(folds, held_risks, strict=True)):
        train, test = target[fit], target[held]
        tau = float(np.quantile(train[time_name], 0.8))
        uno[i] = concordance_index_ipcw(train, test, risk, tau=tau)[0]
        harrell[i] = concordance_index_censored(test[event_name], test[time_name], risk)[0]
    repeats = tuple(float(v) for v in uno.reshape(n_repeats, -1).mean(axis=1))
    return SurvivalCandidate(name, params, float(uno.mean()), repeats, float(harrell.mean()))


def _ensembles(
    chosen: Mapping[str, Mapping[str, Any]],
    ranks: Mapping[str, list[NDArray[np.float64]]],
    singles: list[SurvivalCandidate],
    target: NDArray[Any],
    folds: Folds,
    n_repeats: int,
) -> list[SurvivalCandidate]:
    """Every rank ensemble of two or more models, each the best-scoring fitted candidate of
    its model among `ENSEMBLE_MEMBERS` (so a model's variants compete before they combine),
    scored from the members' held-out training-risk percentiles (their mean is the
    ensemble's risk, as `RankEnsembleSurvival` computes it).

    The members share one preprocessing: that of the linear members (an ensemble whose
    linear members disagree on ``skewed`` is not formed); tree members take it as it comes,
    since a monotone transform of an input leaves the order trees split on unchanged.
    """
    from itertools import combinations

    best: dict[str, SurvivalCandidate] = {}
    for score in singles:
        model = chosen[score.name].get("model", "coxnet")
        usable = score.failed is None and score.name in ranks and model in ENSEMBLE_MEMBERS
        if usable and (model not in best or score.uno_mean > best[model].uno_mean):
            best[model] = score
    eligible = [s.name for s in singles if best.get(chosen[s.name].get("model", "coxnet")) is s]
    out = []
    for size in range(2, len(eligible) + 1):
        for names in combinations(eligible, size):
            linear = {chosen[n].get("skewed", "none") for n in names
                      if chosen[n].get("model", "coxnet") not in TREE_MODELS}  # fmt: skip
            if len(linear) > 1:
                continue
            members = [{"model": chosen[n].get("model", "coxnet"),
                        "params": dict(chosen[n].get("params") or {})} for n in names]  # fmt: skip
            trees = max(int(chosen[n].get("n_trees", 200)) for n in names)
            params = {"model": ENSEMBLE, "n_trees": trees, "params": {"members": members},
                      "skewed": linear.pop() if linear else "none"}  # fmt: skip
            held = [np.mean([ranks[n][i] for n in names], axis=0) for i in range(len(folds))]
            out.append(_candidate(f"{ENSEMBLE}({'+'.join(names)})", params, held, target,
                                  folds, n_repeats))  # fmt: skip
    return out
