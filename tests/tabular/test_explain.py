"""Per-patient explanations: exact for logistic regression, additive Shapley for trees."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clinsight.data.tabular import TabularDataset
from clinsight.errors import DataError
from clinsight.tabular.explain import explain_patient
from clinsight.tabular.models import RiskModel


def test_linear_contributions_are_exact() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    y = (frame["a"] - 2 * frame["b"] + rng.normal(size=200) > 0).astype(int)
    model = RiskModel(clip=(0.0, 1.0), calibration="none").fit(frame, y)
    patient = pd.DataFrame({"a": [0.2], "b": [-1.0]})
    explanation = explain_patient(model, patient, frame, max_background=200)
    linear = model.pipeline_.named_steps["model"]
    z = (patient.to_numpy()[0] - frame.mean().to_numpy()) / frame.std(ddof=0).to_numpy()
    expected = dict(zip(["a", "b"], linear.coef_[0] * z, strict=True))
    assert explanation.method == "linear-exact"
    assert {c.feature: c.log_odds for c in explanation.contributions} == pytest.approx(expected)
    assert explanation.base_log_odds == pytest.approx(float(linear.intercept_[0]))
    assert [c.feature for c in explanation.contributions] == ["b", "a"]  # |-2 * -1.0| > |0.2|
    assert [c.direction for c in explanation.contributions] == ["increases", "increases"]


def test_linear_explanation_on_cleveland_adds_up(
    cleveland: TabularDataset, categories: dict[str, tuple[str, ...]]
) -> None:
    model = RiskModel(cleveland.feature_types, categories).fit(cleveland.X, cleveland.y)
    patient = cleveland.X.iloc[[87]]  # thal is missing for this patient
    explanation = explain_patient(model, patient, cleveland.X, units=cleveland.units)
    total = explanation.base_log_odds + sum(c.log_odds for c in explanation.contributions)
    assert total == pytest.approx(explanation.log_odds, abs=1e-9)
    assert explanation.probability == pytest.approx(model.predict_proba(patient)[0, 1])
    by_name = {c.feature: c for c in explanation.contributions}
    assert by_name["thal"].value is None
    assert by_name["trestbps"].unit == "mm Hg"
    assert by_name["cp"].value == "3"
    record = explanation.to_dict()
    assert record["method"] == "linear-exact"
    assert len(record["contributions"]) == 13
    assert len(explanation.top(3)) == 3


def test_shapley_explanation_is_additive_and_zero_for_unused_values(
    cleveland: TabularDataset,
) -> None:
    X = cleveland.X.assign(site=1.0)
    types = {**cleveland.feature_types, "site": "numeric"}
    model = RiskModel(types, model="gradient_boosting", calibration="none")
    model.fit(X, cleveland.y)
    explanation = explain_patient(model, X.iloc[[0]], X, max_background=30, n_permutations=8)
    assert explanation.method == "shapley-permutation"
    total = explanation.base_log_odds + sum(c.log_odds for c in explanation.contributions)
    assert total == pytest.approx(explanation.log_odds, abs=1e-9)
    background = X.sample(30, random_state=0)
    assert explanation.base_log_odds == pytest.approx(model.raw_log_odds(background).mean())
    by_name = {c.feature: c.log_odds for c in explanation.contributions}
    assert by_name["site"] == 0.0


def test_explain_rejects_bad_input(cleveland: TabularDataset) -> None:
    model = RiskModel(cleveland.feature_types, calibration="none").fit(cleveland.X, cleveland.y)
    with pytest.raises(DataError, match="exactly one patient row; got 2"):
        explain_patient(model, cleveland.X.iloc[:2], cleveland.X)
    with pytest.raises(DataError, match="needs background rows"):
        explain_patient(model, cleveland.X.iloc[:1], cleveland.X.iloc[:0])
    with pytest.raises(DataError, match="column 'ca' is missing from the patient data"):
        explain_patient(model, cleveland.X.iloc[:1].drop(columns="ca"), cleveland.X)
