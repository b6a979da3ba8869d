"""Risk models: estimator zoo, thread limits, calibrated RiskModel, model selection."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from lightgbm import LGBMClassifier
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import RandomForestClassifier, VotingClassifier
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_info

from clinsight.data.tabular import TabularDataset
from clinsight.errors import DataError, ModelError
from clinsight.tabular.models import (
    MODEL_NAMES,
    RiskModel,
    choose_calibration,
    limit_threads,
    make_model,
    select_model,
)


def _openmp_threads() -> list[int]:
    return sorted({p["num_threads"] for p in threadpool_info() if p["user_api"] == "openmp"})


class ThreadProbe(ClassifierMixin, BaseEstimator):  # type: ignore[misc]  # sklearn: untyped, Any
    """Logistic regression that records the OpenMP pool sizes it ran under."""

    seen: list[list[int]] = []  # noqa: RUF012 - shared record across sklearn clones

    def fit(self, X: NDArray[np.float64], y: NDArray[np.int64]) -> ThreadProbe:  # noqa: N803
        ThreadProbe.seen.append(_openmp_threads())
        self.model_ = LogisticRegression().fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X: NDArray[np.float64]) -> Any:  # noqa: N803
        ThreadProbe.seen.append(_openmp_threads())
        return self.model_.predict_proba(X)

    def predict(self, X: NDArray[np.float64]) -> Any:  # noqa: N803
        return self.model_.predict(X)


def test_two_openmp_runtimes_are_loaded_and_limited() -> None:
    """LightGBM and scikit-learn each bring a libgomp; both are capped inside fits."""
    runtimes = [p for p in threadpool_info() if p["user_api"] == "openmp"]
    assert len(runtimes) >= 2
    with limit_threads(1):
        assert _openmp_threads() == [1]


def test_every_fit_and_prediction_runs_under_the_thread_limit(
    cleveland: TabularDataset,
) -> None:
    """A limit of 3 differs from any machine default here, so seeing 3 proves it was applied."""
    ThreadProbe.seen = []
    before = _openmp_threads()
    model = RiskModel(cleveland.feature_types, model=ThreadProbe(), n_threads=3)
    model.fit(cleveland.X, cleveland.y)
    model.predict_proba(cleveland.X.iloc[:5])
    assert len(ThreadProbe.seen) >= 7  # 5 calibration folds + full fit + predictions
    assert all(seen == [3] for seen in ThreadProbe.seen)
    assert _openmp_threads() == before  # restored after each call


def test_thread_counts_are_explicit() -> None:
    lgbm = make_model("lightgbm", n_threads=1)
    forest = make_model("random_forest", n_threads=1)
    assert isinstance(lgbm, LGBMClassifier)
    assert lgbm.get_params()["n_jobs"] == 1
    assert isinstance(forest, RandomForestClassifier)
    assert forest.n_jobs == 1
    ensemble = make_model("ensemble")
    assert isinstance(ensemble, VotingClassifier)
    assert [name for name, _ in ensemble.estimators] == [
        "logistic", "gradient_boosting", "random_forest",
    ]  # fmt: skip
    assert MODEL_NAMES == ("logistic", "gradient_boosting", "lightgbm", "random_forest", "ensemble")
    with pytest.raises(ModelError, match="unknown model 'svm'"):
        make_model("svm")  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="n_threads must be at least 1; got 0"), limit_threads(0):
        pass


def test_risk_model_is_calibrated_seeded_and_checked(
    cleveland: TabularDataset, categories: dict[str, tuple[str, ...]]
) -> None:
    X, y = cleveland.X, cleveland.y
    first = RiskModel(cleveland.feature_types, categories).fit(X, y)
    second = RiskModel(cleveland.feature_types, categories).fit(X, y)
    risk = first.predict_proba(X)
    assert risk.shape == (303, 2)
    np.testing.assert_allclose(risk.sum(axis=1), 1.0)
    np.testing.assert_array_equal(risk, second.predict_proba(X))
    assert first.classes_.tolist() == [0, 1]
    assert first.feature_names_in_.tolist() == cleveland.spec.feature_names
    assert first.predict(X).tolist() == (risk[:, 1] >= 0.5).astype(int).tolist()
    assert first.raw_log_odds(X.iloc[:3]).tolist() == pytest.approx(
        first.pipeline_.decision_function(X.iloc[:3]).tolist()
    )
    with pytest.raises(DataError, match="column 'thal' is missing"):
        first.predict_proba(X.drop(columns="thal"))
    patients = X.iloc[:2].astype({"chol": object})
    patients.loc[1, "chol"] = "high"
    with pytest.raises(DataError, match="row 1, column 'chol': 'high' is not a number"):
        first.predict_proba(patients)
    with pytest.raises(DataError, match="row 0, column 'cp': unknown category '5'"):
        first.predict_proba(X.iloc[:1].assign(cp="5"))
    with pytest.raises(DataError, match="needs a pandas DataFrame; got ndarray"):
        first.predict_proba(X.to_numpy())  # type: ignore[arg-type]  # the wrong type on purpose


@pytest.mark.parametrize("model", ["lightgbm", "random_forest"])
def test_tree_models_fit_with_isotonic_calibration(cleveland: TabularDataset, model: str) -> None:
    fitted = RiskModel(cleveland.feature_types, model=model, calibration="isotonic")
    risk = fitted.fit(cleveland.X, cleveland.y).predict_proba(cleveland.X)[:, 1]
    assert risk.min() >= 0.0
    assert risk.max() <= 1.0


def test_risk_model_rejects_bad_input(cleveland: TabularDataset) -> None:
    X = cleveland.X
    with pytest.raises(DataError, match="single class"):
        RiskModel().fit(X, np.zeros(len(X), dtype=int))
    with pytest.raises(DataError, match="y must be 303 labels of 0/1"):
        RiskModel().fit(X, np.full(len(X), 2))
    with pytest.raises(ModelError, match="calibration must be sigmoid, isotonic or none"):
        RiskModel(calibration="beta").fit(X, cleveland.y)  # type: ignore[arg-type]
    with pytest.raises(DataError, match="column 'bmi' is missing from X"):
        RiskModel({"bmi": "numeric"}).fit(X, cleveland.y)


def test_types_are_inferred_when_not_given() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0] * 5, "b": ["x", "y"] * 10})
    model = RiskModel(calibration="none").fit(frame, [0, 1, 0, 1] * 5)
    assert model.feature_types_ == {"a": "numeric", "b": "categorical"}


def test_select_model_compares_candidates_on_repeated_cv(
    cleveland: TabularDataset, categories: dict[str, tuple[str, ...]]
) -> None:
    selection = select_model(
        cleveland.X, cleveland.y, cleveland.feature_types, categories=categories,
        candidates={"logistic": {"model": "logistic"},
                    "gradient_boosting": {"model": "gradient_boosting"}},
        n_splits=3, n_repeats=2,
    )  # fmt: skip
    names = [s.name for s in selection.scores]
    assert names == ["logistic", "gradient_boosting"]
    assert selection.best.name == max(selection.scores, key=lambda s: s.auc_mean).name
    lenient = select_model(
        cleveland.X, cleveland.y, cleveland.feature_types, categories=categories,
        candidates={"gradient_boosting": {"model": "gradient_boosting"},
                    "logistic": {"model": "logistic"}},
        n_splits=3, n_repeats=1, tolerance=1.0,
    )  # fmt: skip
    assert lenient.best.name == "gradient_boosting"  # first within tolerance wins
    assert 0.85 < selection.best.auc_mean < 0.95
    assert selection.model.calibration == selection.calibration == "sigmoid"
    assert selection.model.model == selection.best.params["model"]
    with pytest.raises(ModelError, match="at least one candidate"):
        select_model(cleveland.X, cleveland.y, candidates={})


def test_choose_calibration_follows_the_shape_of_the_scores() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(0, 2, 3000)
    logistic = (rng.random(3000) < 1 / (1 + np.exp(-scores))).astype(int)
    assert choose_calibration(scores, logistic) == "sigmoid"
    step = (rng.random(3000) < np.where(scores > 1.0, 0.9, 0.1)).astype(int)
    assert choose_calibration(scores, step) == "isotonic"
