"""FHIR R4 out: RiskAssessment resources that validate and cite their evidence."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fhir.resources.R4B.riskassessment import RiskAssessment

from clinsight.data.fhir import read_bundle
from clinsight.data.fhir_features import FhirFeatureSpec
from clinsight.errors import DataError
from clinsight.inference.cache import ModelCache, RiskPredictor
from clinsight.interop.fhir_out import (
    MODEL_SYSTEM,
    POPULATION_WARNING_URL,
    explanation_text,
    risk_assessment,
    risk_assessment_json,
)
from clinsight.services.risk import assess_features, assess_record
from tests.support.risk_models import MODEL_NAME, synthea_file, train_pima_synthea

WHEN = datetime(2019, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory) -> RiskPredictor:
    root = tmp_path_factory.mktemp("fhir-out")
    train_pima_synthea(root)
    return ModelCache(root).risk(MODEL_NAME)


def test_a_synthea_patient_round_trips_to_a_valid_risk_assessment(
    predictor: RiskPredictor,
) -> None:
    record = read_bundle(synthea_file(2))
    result = assess_record(predictor, record, FhirFeatureSpec.builtin("pima-synthea"), as_of=WHEN)
    resource = risk_assessment(result, record.reference, occurrence=WHEN)
    data = risk_assessment_json(resource)
    assert RiskAssessment.model_validate(data).status == "final"
    assert data["subject"] == {"reference": record.reference}
    assert data["occurrenceDateTime"] == "2019-06-01T00:00:00Z"
    (prediction,) = data["prediction"]
    assert prediction["probabilityDecimal"] == pytest.approx(result.probability, abs=1e-6)
    assert prediction["outcome"] == {"text": "diabetes"}
    assert prediction["qualitativeRisk"]["coding"][0]["system"] == (
        "http://terminology.hl7.org/CodeSystem/risk-probability"
    )
    assert [b["reference"] for b in data["basis"]] == list(result.basis)
    assert len(data["basis"]) == 3
    coding = data["method"]["coding"][0]
    assert (coding["system"], coding["code"]) == (MODEL_SYSTEM, f"{MODEL_NAME}/1")
    assert result.model.artifact_sha256 in data["method"]["text"]
    assert data["note"][1]["text"].startswith("Top factors: ")
    warning = (
        "Outside the validated population (female, age 21–81; Pima Indians diabetes (NIDDK; "
        "women of Pima heritage aged 21 or more)): age 87 is outside the training ages 21–81; "
        "sex male is not in the training population (female only). The risk is an "
        "extrapolation; do not rely on it."
    )  # Synthea patient 2: a man born in 1932
    assert data["note"][0]["text"] == warning
    assert data["extension"] == [{"url": POPULATION_WARNING_URL, "valueString": warning}]


def test_levels_map_to_qualitative_risk_and_missing_inputs_to_the_note(
    predictor: RiskPredictor,
) -> None:
    low = assess_features(predictor, {"Glucose": 80.0, "BMI": 21.0, "Age": 22.0})
    high = assess_features(predictor, {"Glucose": 190.0, "BMI": 40.0, "Age": 60.0})
    codes = [
        risk_assessment_json(risk_assessment(r, "Patient/p"))["prediction"][0]["qualitativeRisk"][
            "coding"
        ][0]["code"]
        for r in (low, high)
    ]
    assert codes == ["low", "high"]
    data = risk_assessment_json(risk_assessment(low, "Patient/p"))
    assert data["note"][0]["text"].endswith(
        "Missing inputs (imputed by the model): BloodPressure (not given)."
    )
    assert "basis" not in data
    assert "extension" not in data  # a woman of 22: inside the population
    assert explanation_text(high, 1) == "Glucose 190 mg/dL (2-h OGTT) raised the risk"


def test_an_invalid_resource_is_refused(predictor: RiskPredictor) -> None:
    result = assess_features(predictor, {"Glucose": 100.0})
    with pytest.raises(DataError, match="the RiskAssessment does not validate"):
        risk_assessment(result, "")
