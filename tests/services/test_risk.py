"""Assessing risk with a registered model: values or FHIR in, calibrated and explained out."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest

from clinsight.data.fhir import FhirObservation, PatientRecord, read_bundle
from clinsight.data.fhir_features import FhirFeatureSpec, MissingFeature
from clinsight.errors import (
    DataError,
    ImplausibleInputError,
    InvalidInputError,
    ModelNotFoundError,
)
from clinsight.inference.cache import ModelCache, RiskPredictor
from clinsight.inference.risk import risk_level
from clinsight.services.risk import assess_features, assess_record
from tests.support.risk_models import MODEL_NAME, synthea_file, train_pima_synthea


@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory) -> RiskPredictor:
    root = tmp_path_factory.mktemp("risk-service")
    train_pima_synthea(root)
    return ModelCache(root).risk(MODEL_NAME)


def test_assessment_matches_the_model_and_adds_up(predictor: RiskPredictor) -> None:
    values = {"Glucose": 148.0, "BloodPressure": 72.0, "BMI": 33.6, "Age": 50.0}
    result = assess_features(predictor, values)
    expected = predictor.model.predict_proba(pd.DataFrame({k: [v] for k, v in values.items()}))
    assert result.probability == pytest.approx(expected[0, 1])
    explanation = result.explanation
    assert explanation.method == "linear-exact"
    total = explanation.base_log_odds + sum(c.log_odds for c in explanation.contributions)
    assert total == pytest.approx(explanation.log_odds)
    assert explanation.contributions[0].feature == "Glucose"
    assert explanation.contributions[0].direction == "increases"
    assert explanation.contributions[0].unit == "mg/dL (2-h OGTT)"
    assert result.level == risk_level(result.probability, {"warning": 0.2, "critical": 0.5})
    assert result.missing == ()


def test_missing_inputs_are_listed_and_text_numbers_accepted(predictor: RiskPredictor) -> None:
    result = assess_features(predictor, {"Glucose": "120", "Age": 40})
    assert result.missing == (
        MissingFeature("BloodPressure", "not given"), MissingFeature("BMI", "not given"),
    )  # fmt: skip
    assert result.inputs == {"Glucose": "120", "BloodPressure": None, "BMI": None, "Age": 40}
    assert [c.value for c in result.explanation.contributions if c.feature == "BMI"] == [None]


def test_bad_inputs_are_refused_by_name(predictor: RiskPredictor) -> None:
    with pytest.raises(DataError, match="'Insulin' is not an input of this model"):
        assess_features(predictor, {"Insulin": 80})
    with pytest.raises(InvalidInputError, match=r"^Glucose must be a number \(mg/dL\); 'high' was"):
        assess_features(predictor, {"Glucose": "high", "Age": 30})
    with pytest.raises(DataError, match="none of the inputs of pima-synthea"):
        assess_features(predictor, {})


def test_a_patient_outside_the_validated_population_is_flagged(predictor: RiskPredictor) -> None:
    """Pima holds women aged 21-81: a 10-year-old (from the age input) or a known man is
    outside it; the risk is still computed, with the warning beside it."""
    child = assess_features(predictor, {"Glucose": 120.0, "Age": 10.0})
    assert child.population_warning is not None
    assert child.population_warning.reasons == ("age 10 is outside the training ages 21–81",)
    assert child.to_dict()["warnings"] == [child.population_warning.to_dict()]
    assert 0.0 < child.probability < 1.0
    man = assess_features(predictor, {"Glucose": 120.0, "Age": 40.0}, sex="male")
    assert man.population_warning is not None
    assert man.population_warning.reasons == (
        "sex male is not in the training population (female only)",
    )
    known = assess_features(predictor, {"Glucose": 120.0, "Age": 40.0}, age=9.5, sex="female")
    assert known.population_warning is not None  # the known age wins over the input
    woman = assess_features(predictor, {"Glucose": 120.0, "Age": 40.0}, sex="female")
    assert woman.population_warning is None
    assert woman.to_dict()["warnings"] == []
    assert woman.to_dict()["validated_population"]["description"] == "female, age 21–81"


def test_levels_follow_the_calibrated_thresholds() -> None:
    levels = {"warning": 0.2, "critical": 0.5}
    assert [risk_level(p, levels) for p in (0.1, 0.2, 0.49, 0.5)] == [
        "info", "warning", "warning", "critical",
    ]  # fmt: skip


def test_a_fhir_record_is_assessed_with_its_evidence(predictor: RiskPredictor) -> None:
    record = read_bundle(synthea_file(2))
    spec = FhirFeatureSpec.builtin("pima-synthea")
    result = assess_record(predictor, record, spec, as_of=datetime(2019, 6, 1, tzinfo=UTC))
    assert result.missing == ()
    assert result.inputs["Glucose"] == pytest.approx(93.31648636794988)
    assert result.basis == tuple(sorted(result.basis))
    assert "Observation/aae5ffda-7cc0-4e25-8752-0a7fd7b73677" in result.basis
    assert 0.0 < result.probability < 1.0


def test_predictors_want_a_production_version_unless_told(tmp_path: Path) -> None:
    train_pima_synthea(tmp_path, production=False)
    predictors = ModelCache(tmp_path)
    with pytest.raises(ModelNotFoundError, match="has no production version"):
        predictors.risk(MODEL_NAME)
    assert predictors.risk(MODEL_NAME, newest=True).version.version == 1


def test_implausible_inputs_are_refused_by_name(predictor: RiskPredictor) -> None:
    values = {"Glucose": 2000.0, "BloodPressure": -5.0, "BMI": 300.0, "Age": 50.0}
    with pytest.raises(ImplausibleInputError) as refused:
        assess_features(predictor, values)
    assert refused.value.fields == {
        "Glucose": "Glucose 2000 mg/dL is outside the plausible range 10–1500 mg/dL",
        "BloodPressure": "BloodPressure -5 mm Hg is outside the plausible range 10–200 mm Hg",
        "BMI": "BMI 300 kg/m² is outside the plausible range 7–200 kg/m²",
    }
    assert str(refused.value).endswith(
        "BMI 300 kg/m² is outside the plausible range 7–200 kg/m²; correct the value or "
        "leave it empty (missing)."
    )
    in_range = assess_features(predictor, {**values, "Glucose": 1500.0, "BloodPressure": 10,
                                           "BMI": 7})  # fmt: skip
    assert in_range.missing == ()
    zero = assess_features(predictor, {"Glucose": 0, "Age": 50})  # Pima: 0 is "missing"
    assert zero.inputs["Glucose"] == 0


def test_an_implausible_fhir_value_is_refused_with_its_evidence(
    predictor: RiskPredictor,
) -> None:
    when = datetime(2019, 7, 1, tzinfo=UTC)
    record = PatientRecord(
        patient_id="p1", birth_date=date(1970, 1, 1), sex="female", deceased=None,
        conditions=(), medications=(), source_sha256="0" * 64,
        observations=(FhirObservation("Observation/g1", "http://loinc.org", "2339-0",
                                      "Glucose", 2000.0, "mg/dL", when),),
    )  # fmt: skip
    spec = FhirFeatureSpec.builtin("pima-synthea")
    with pytest.raises(ImplausibleInputError) as refused:
        assess_record(predictor, record, spec, as_of=datetime(2020, 1, 1, tzinfo=UTC))
    assert refused.value.fields == {
        "Glucose": "Observation/g1: Glucose 2000 mg/dL is outside the plausible range 10–1500 mg/dL"
    }
