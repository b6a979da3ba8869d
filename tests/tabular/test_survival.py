"""Survival estimators on the risk pipeline: every model fits, predicts curves and a band."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from clinsight.data.survival import load_survival_dataset
from clinsight.data.tabular import FeatureType
from clinsight.errors import DataError, ModelError
from clinsight.tabular.survival import (
    SURVIVAL_MODELS,
    SurvivalModel,
    make_survival_estimator,
    select_survival_model,
    step_values,
    survival_folds,
)
from clinsight.tabular.survival_estimators import percentile_of

FAST = {"neural_cox": {"max_epochs": 30}}


@pytest.fixture(scope="module")
def gbsg2_sample():  # type: ignore[no-untyped-def]
    data = load_survival_dataset("gbsg2")
    rows = np.random.default_rng(0).choice(len(data.X), 240, replace=False)
    return data.X.iloc[rows], data.y[rows], data.spec.feature_types


@pytest.mark.parametrize("name", SURVIVAL_MODELS)
def test_every_model_gives_decreasing_curves_and_a_band_around_them(gbsg2_sample, name) -> None:  # type: ignore[no-untyped-def]
    X, y, types = gbsg2_sample
    model = SurvivalModel(name, types, params=FAST.get(name), n_trees=5, band_refits=2)
    model.fit(X, y)
    times = [100.0, 365.25, 1095.75, 1826.25]
    curves = model.predict_survival(X.iloc[:5], times)
    assert curves.shape == (5, 4)
    assert np.all(np.diff(curves, axis=1) <= 1e-12)
    assert np.all((curves >= 0) & (curves <= 1))
    low, high = model.predict_band(X.iloc[:5], times)
    assert np.all(low <= curves + 1e-12)
    assert np.all(curves <= high + 1e-12)
    assert model.predict(X.iloc[:5]).shape == (5,)


def test_step_values_reads_a_right_continuous_step_function() -> None:
    grid = np.array([1.0, 3.0])
    values = np.array([[0.9, 0.5]])
    assert step_values(grid, values, [0.5, 1.0, 2.9, 3.0, 10.0]).tolist() == [
        [1.0, 0.9, 0.9, 0.5, 0.5]
    ]


def test_bad_arguments_are_refused(gbsg2_sample) -> None:  # type: ignore[no-untyped-def]
    X, y, types = gbsg2_sample
    with pytest.raises(ModelError, match="Unknown survival model 'deephit'"):
        make_survival_estimator("deephit")
    with pytest.raises(DataError, match="structured array"):
        SurvivalModel("cox", types).fit(X, np.ones(len(X)))
    with pytest.raises(ModelError, match="without band refits"):
        SurvivalModel("cox", types).fit(X, y).predict_band(X.iloc[:1], [100.0])


def test_selection_compares_candidates_on_the_same_folds(gbsg2_sample) -> None:  # type: ignore[no-untyped-def]
    X, y, types = gbsg2_sample
    candidates = {"cox": {"model": "cox"}, "coxnet": {"model": "coxnet"}}
    selection = select_survival_model(X, y, types, candidates=candidates, n_splits=3, n_repeats=2)
    assert [s.name for s in selection.scores] == ["cox", "coxnet"]
    assert all(len(s.uno_repeats) == 2 for s in selection.scores)
    top = max(s.uno_mean for s in selection.scores)
    assert selection.best.uno_mean >= top - 0.002
    assert selection.model.model == selection.best.name


ENSEMBLE_OF_TWO = {"members": [{"model": "cox"}, {"model": "random_survival_forest"}]}


def test_an_ensemble_averages_its_members_training_risk_percentiles(gbsg2_sample) -> None:  # type: ignore[no-untyped-def]
    X, y, types = gbsg2_sample
    fit, held = slice(0, 180), slice(180, None)
    model = SurvivalModel("ensemble", types, params=ENSEMBLE_OF_TWO, n_trees=5, band_refits=2)
    model.fit(X.iloc[fit], y[fit])
    expected = []
    for name in ("cox", "random_survival_forest"):
        member = SurvivalModel(name, types, n_trees=5).fit(X.iloc[fit], y[fit])
        reference = np.sort(member.predict(X.iloc[fit]))
        expected.append(percentile_of(reference, member.predict(X.iloc[held])))
    risk = model.predict(X.iloc[held])
    assert np.allclose(risk, np.mean(expected, axis=0))
    assert np.all((risk >= 0) & (risk <= 1))
    curves = model.predict_survival(X.iloc[held], [365.25, 1095.75, 1826.25])
    assert np.all(np.diff(curves, axis=1) <= 1e-12)
    low, high = model.predict_band(X.iloc[held], [365.25])
    assert np.all((low <= curves[:, :1] + 1e-12) & (curves[:, :1] <= high + 1e-12))


def test_percentile_of_gives_mid_ranks_of_ties() -> None:
    reference = np.array([1.0, 2.0, 2.0, 3.0])
    assert percentile_of(reference, [0.0, 2.0, 5.0]).tolist() == [0.0, 0.5, 1.0]


def test_an_ensemble_needs_two_non_neural_members() -> None:
    with pytest.raises(ModelError, match="two or more members"):
        make_survival_estimator("ensemble", members=[{"model": "cox"}])
    with pytest.raises(ModelError, match="neural_cox"):
        make_survival_estimator("ensemble", members=[{"model": "cox"}, {"model": "neural_cox"}])


def test_selection_scores_ensembles_as_the_ensemble_itself_scores(gbsg2_sample) -> None:  # type: ignore[no-untyped-def]
    from sksurv.metrics import concordance_index_ipcw

    X, y, types = gbsg2_sample
    candidates: dict[str, dict[str, Any]] = {"cox": {"model": "cox", "n_trees": 5},
                  "random_survival_forest": {"model": "random_survival_forest", "n_trees": 5},
                  "neural_cox": {"model": "neural_cox", "params": FAST["neural_cox"]}}  # fmt: skip
    selection = select_survival_model(
        X, y, types, candidates=candidates, n_splits=3, n_repeats=1, ensembles=True
    )
    names = [s.name for s in selection.scores]
    assert names == [*candidates, "ensemble(cox+random_survival_forest)"]
    scored = selection.scores[-1]
    uno = []
    for fit, held in survival_folds(y["event"], 3, 1, 0):
        model = SurvivalModel(feature_types=types, **scored.params).fit(X.iloc[fit], y[fit])
        tau = float(np.quantile(y[fit]["time"], 0.8))
        uno.append(concordance_index_ipcw(y[fit], y[held], model.predict(X.iloc[held]), tau=tau)[0])
    assert scored.uno_mean == pytest.approx(float(np.mean(uno)))
    assert selection.model.model == selection.best.params["model"]


def test_log1p_inputs_put_the_skewed_non_negative_features_on_a_log_scale(gbsg2_sample) -> None:  # type: ignore[no-untyped-def]
    X, y, types = gbsg2_sample
    model = SurvivalModel("cox", types, skewed="log1p").fit(X, y)
    numeric = model.pipeline_.named_steps["preprocess"].named_transformers_["numeric"]
    columns = [c for c, t in types.items() if FeatureType(t) is FeatureType.NUMERIC]
    chosen = {c for c, flag in zip(columns, numeric.named_steps["log1p"].columns_, strict=True)
              if flag}  # fmt: skip
    assert {"pnodes", "progrec", "estrec"} <= chosen
    assert "age" not in chosen
    plain = SurvivalModel("cox", types).fit(X, y)
    assert not np.allclose(model.predict(X), plain.predict(X))
    with pytest.raises(ValueError, match="skewed must be one of"):
        SurvivalModel("cox", types, skewed="sqrt").fit(X, y)  # type: ignore[arg-type]


def test_ensembles_take_each_models_best_variant_and_one_preprocessing(gbsg2_sample) -> None:  # type: ignore[no-untyped-def]
    X, y, types = gbsg2_sample
    forest = {"model": "random_survival_forest", "n_trees": 5}
    candidates: dict[str, dict[str, Any]] = {
        "cox": {"model": "cox"}, "cox_log1p": {"model": "cox", "skewed": "log1p"},
        "forest": forest, "forest_leaf30": {**forest, "params": {"min_samples_leaf": 30}},
    }  # fmt: skip
    selection = select_survival_model(
        X, y, types, candidates=candidates, n_splits=3, n_repeats=1, ensembles=True
    )
    singles = {s.name: s for s in selection.scores[:4]}
    best_cox = max(("cox", "cox_log1p"), key=lambda n: singles[n].uno_mean)
    best_forest = max(("forest", "forest_leaf30"), key=lambda n: singles[n].uno_mean)
    assert [s.name for s in selection.scores[4:]] == [f"ensemble({best_cox}+{best_forest})"]
    ensemble = selection.scores[4].params
    assert ensemble["skewed"] == candidates[best_cox].get("skewed", "none")
    assert [m["model"] for m in ensemble["params"]["members"]] == ["cox", "random_survival_forest"]
    linear = {"cox_log1p": candidates["cox_log1p"], "coxnet": {"model": "coxnet"}}
    apart = select_survival_model(X, y, types, candidates=linear, n_splits=3, n_repeats=1,
                                  ensembles=True)  # fmt: skip
    assert [s.name for s in apart.scores] == ["cox_log1p", "coxnet"]  # no mixed preprocessing
