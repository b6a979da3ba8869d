"""Predicting a patient's survival: curves, horizons, population gate, audit."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy.orm import Session, sessionmaker

from clinsight.errors import (
    DataError,
    ImplausibleInputError,
    OutOfPopulationError,
    PermissionDeniedError,
)
from clinsight.inference.cache import ModelCache, SurvivalPredictor
from clinsight.interop.cds_survival import survival_card
from clinsight.interop.fhir_survival import survival_risk_assessment
from clinsight.services.patients import register_patient
from clinsight.services.survival import assess_stored_survival, predict_survival
from clinsight.store import audit
from tests.support.store import MakeContext, People
from tests.support.survival_models import PATIENT, SURVIVAL_MODEL


@pytest.fixture
def registry(survival_registry: Path) -> Path:
    return survival_registry


@pytest.fixture
def predictor(registry: Path) -> SurvivalPredictor:
    return ModelCache(registry).survival(SURVIVAL_MODEL)


def test_a_patient_gets_a_curve_risks_by_horizon_and_factors(predictor: SurvivalPredictor) -> None:
    result = predict_survival(predictor, PATIENT)
    assert [h.years for h in result.horizons] == [1.0, 3.0, 5.0]
    risks = [h.risk for h in result.horizons]
    assert risks == sorted(risks)
    assert 0 < risks[0] < risks[-1] < 1
    expected = 1 - predictor.model.predict_survival(pd.DataFrame([PATIENT]), [5 * 365.25])[0, 0]
    assert result.headline.risk == pytest.approx(expected)
    assert all(h.low is not None and h.low <= h.risk <= h.high for h in result.horizons)  # type: ignore[operator]
    assert result.factors[0].feature == "pnodes"
    assert result.factors[0].direction == "raises"
    assert result.days[0] == 0.0
    assert result.survival[0] == 1.0
    assert result.missing == ()


def test_bad_inputs_and_horizons_are_refused(predictor: SurvivalPredictor) -> None:
    with pytest.raises(DataError, match=r"longest supported horizon is 6\.0 years \(2195 days\)"):
        predict_survival(predictor, PATIENT, [1, 8])
    with pytest.raises(DataError, match="must be a positive number of years"):
        predict_survival(predictor, PATIENT, [0])
    with pytest.raises(DataError, match="must be a positive number of years"):
        predict_survival(predictor, PATIENT, [float("nan")])
    with pytest.raises(ImplausibleInputError, match="age 150 years is outside the plausible"):
        predict_survival(predictor, {**PATIENT, "age": 150})
    with pytest.raises(OutOfPopulationError, match="age 90 years is outside the training"):
        predict_survival(predictor, {**PATIENT, "age": 90})
    with pytest.raises(DataError, match="'grade' is not an input"):
        predict_survival(predictor, {"grade": 2})
    with pytest.raises(DataError, match="none of the inputs"):
        predict_survival(predictor, {})


def test_the_fhir_risk_assessment_has_one_prediction_per_horizon(
    predictor: SurvivalPredictor,
) -> None:
    result = predict_survival(predictor, {**PATIENT, "tsize": None})
    resource = survival_risk_assessment(result, "Patient/p1")
    assert [p["whenRange"]["high"]["value"] for p in resource["prediction"]] == [1, 3, 5]
    assert [p["probabilityDecimal"] for p in resource["prediction"]] == [
        round(h.risk, 6) for h in result.horizons
    ]
    assert resource["prediction"][0]["whenRange"]["high"]["code"] == "a"
    assert "95 % band of bootstrap refits" in resource["prediction"][2]["rationale"]
    assert "Missing inputs (imputed by the model): tsize." in resource["note"][0]["text"]
    with pytest.raises(DataError, match="does not validate"):
        survival_risk_assessment(result, "")


def test_a_stored_patient_is_access_checked_and_audited(
    registry: Path, context: MakeContext, people: People, sessions: sessionmaker[Session]
) -> None:
    alice, bob = context(people.alice), context(people.bob)
    patient = register_patient(
        alice, mrn="MRN-S1", name="Survival Test", birth_date=date(1970, 1, 1), sex="female"
    )
    cache = ModelCache(registry)
    result = assess_stored_survival(alice, cache, patient.id, PATIENT, model=SURVIVAL_MODEL)
    assert result.model.name == SURVIVAL_MODEL
    with pytest.raises(PermissionDeniedError):
        assess_stored_survival(bob, cache, patient.id, PATIENT, model=SURVIVAL_MODEL)
    with sessions() as session:
        entries = audit.list_entries(session, patient_id=patient.id)
        actions = [(e.action, e.outcome) for e in entries]
    assert ("survival.assess", "success") in actions
    assert ("survival.assess", "denied") in actions


def test_the_cds_card_informs_with_every_horizon(predictor: SurvivalPredictor) -> None:
    result = predict_survival(predictor, PATIENT)
    card = survival_card(result, "Recurrence (gbsg2)", "https://x.example/card")
    assert card["summary"] == (
        f"{result.headline.risk:.0%} risk of recurrence or death within 5 years"
        " - Recurrence (gbsg2)"
    )
    assert card["indicator"] == "info"
    assert card["detail"].count("- within ") == 3
    assert "Factors: pnodes 5.0 nodes raises the 5-year risk by" in card["detail"]
    assert card["links"][0]["url"] == "https://x.example/card"
