"""CDS Hooks pieces: the EHR's JWT, discovery and prefetch, and the cards."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest

from clinsight.data.fhir_features import FhirFeatureSpec
from clinsight.errors import AuthenticationError, ConfigurationError, DataError
from clinsight.inference.cache import ModelCache, RiskPredictor
from clinsight.interop.cds_client import SigningEhr, prefetch_for
from clinsight.interop.cds_hooks import (
    CdsJwtVerifier,
    CdsService,
    build_cards,
    discovery,
    missing_prefetch,
    record_from_prefetch,
)
from clinsight.services.risk import assess_features
from tests.support.risk_models import MODEL_NAME, synthea_file, train_pima_synthea

AUD = "https://clinsight.example.org/cds-services/pima-synthea-risk"
SERVICE = CdsService(
    id="pima-synthea-risk", title="Diabetes risk", description="test",
    model_name=MODEL_NAME, spec=FhirFeatureSpec.builtin("pima-synthea"),
)  # fmt: skip


@pytest.fixture(scope="module")
def ehr() -> SigningEhr:
    return SigningEhr.create()


@pytest.fixture
def verifier(ehr: SigningEhr, tmp_path: Path) -> CdsJwtVerifier:
    return CdsJwtVerifier({ehr.issuer: str(ehr.write_jwks(tmp_path))})


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_tokens_signed_by_an_allow_listed_issuer_pass(
    ehr: SigningEhr, verifier: CdsJwtVerifier, alg: str
) -> None:
    caller = verifier.verify(ehr.token(AUD, alg=alg, jti="abc"), AUD)
    assert (caller.issuer, caller.subject, caller.jti) == (ehr.issuer, "client-1", "abc")


def test_wrong_issuer_expired_bad_signature_and_audience_are_refused(
    ehr: SigningEhr, verifier: CdsJwtVerifier
) -> None:
    stranger = SigningEhr.create("https://stranger.example.org")
    with pytest.raises(AuthenticationError, match=r"'https://stranger\.example\.org' is not allow"):
        verifier.verify(stranger.token(AUD), AUD)
    impostor = SigningEhr.create(ehr.issuer)  # right issuer, other keys
    with pytest.raises(AuthenticationError, match="its signature does not match"):
        verifier.verify(impostor.token(AUD), AUD)
    with pytest.raises(AuthenticationError, match="it has expired"):
        verifier.verify(ehr.token(AUD, age=400), AUD)
    with pytest.raises(AuthenticationError, match="it was issued for another audience"):
        verifier.verify(ehr.token("https://elsewhere/cds-services/x"), AUD)
    with pytest.raises(AuthenticationError, match="lives over 5 minutes"):
        verifier.verify(ehr.token(AUD, lifetime=600), AUD)
    with pytest.raises(AuthenticationError, match="its jti claim is missing"):
        verifier.verify(ehr.token(AUD, jti=None), AUD)


def test_replays_symmetric_algorithms_and_garbage_are_refused(
    ehr: SigningEhr, verifier: CdsJwtVerifier
) -> None:
    token = ehr.token(AUD)
    verifier.verify(token, AUD)
    with pytest.raises(AuthenticationError, match="replayed"):
        verifier.verify(token, AUD)
    forged = jwt.encode({"iss": ehr.issuer, "aud": AUD}, "s" * 32, algorithm="HS256")
    with pytest.raises(AuthenticationError, match="alg 'HS256' refused"):
        verifier.verify(forged, AUD)
    with pytest.raises(AuthenticationError, match=r"refused: it is not a well-formed token$"):
        verifier.verify("not-a-jwt", AUD)


def test_an_unreadable_jwks_is_a_configuration_error(ehr: SigningEhr, tmp_path: Path) -> None:
    verifier = CdsJwtVerifier({ehr.issuer: str(tmp_path / "missing.json")})
    with pytest.raises(ConfigurationError, match="JWKS of issuer"):
        verifier.verify(ehr.token(AUD), AUD)


def test_discovery_declares_patient_view_with_prefetch_templates() -> None:
    (entry,) = discovery({SERVICE.id: SERVICE})["services"]
    assert entry["hook"] == "patient-view"
    assert entry["id"] == "pima-synthea-risk"
    assert entry["prefetch"] == {
        "patient": "Patient/{{context.patientId}}",
        "observations": "Observation?patient={{context.patientId}}&combo-code="
        "http://loinc.org|2339-0,http://loinc.org|2345-7,http://loinc.org|39156-5,"
        "http://loinc.org|8462-4&_sort=-date&_count=100",
    }


def test_prefetch_becomes_a_record_of_the_context_patient() -> None:
    prefetch = prefetch_for(synthea_file(2), ("2339-0", "8462-4", "39156-5"))
    patient_id = prefetch["patient"]["id"]
    request = {"context": {"patientId": patient_id}, "prefetch": prefetch}
    assert missing_prefetch(SERVICE, request) == []
    record = record_from_prefetch(SERVICE, request)
    assert record.patient_id == patient_id
    assert {o.code for o in record.observations} >= {"2339-0", "8462-4", "39156-5"}
    assert missing_prefetch(SERVICE, {"prefetch": {"patient": prefetch["patient"]}}) == [
        "observations"
    ]
    with pytest.raises(DataError, match=r"not the patient of context\.patientId"):
        record_from_prefetch(SERVICE, {"context": {"patientId": "other"}, "prefetch": prefetch})


@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory) -> RiskPredictor:
    """The small Pima model, trained once for this module's card tests."""
    root = tmp_path_factory.mktemp("cds-cards")
    train_pima_synthea(root)
    return ModelCache(root).risk(MODEL_NAME)


def test_cards_carry_a_short_summary_indicator_factors_and_the_card_link(
    predictor: RiskPredictor,
) -> None:
    result = assess_features(predictor, {"Glucose": 180.0, "BMI": 38.0, "Age": 55.0})
    (card,) = build_cards(SERVICE, result, "https://x/card")
    assert len(card["summary"]) < 140
    assert card["summary"].startswith(f"Diabetes risk {result.probability:.0%} (critical)")
    assert card["indicator"] == "critical"
    assert (
        "Top contributing factors: Glucose 180 mg/dL (2-h OGTT) raised the risk" in card["detail"]
    )
    assert "BloodPressure: not given" in card["detail"]
    assert card["links"] == [{"label": "Model card", "url": "https://x/card", "type": "absolute"}]
    assert card["source"]["label"] == "Clinsight pima-synthea v1"


def test_a_patient_outside_the_population_gets_a_warning_card_without_the_figure(
    predictor: RiskPredictor,
) -> None:
    """A 10-year-old boy scored by the Pima model (women aged 21-81): indicator warning, no
    risk figure on the summary line; the figure stays in the detail, after the warning."""
    values = {"Glucose": 180.0, "BMI": 38.0, "Age": 10.0}
    result = assess_features(predictor, values, age=10.0, sex="male")
    assert result.level == "critical"
    (card,) = build_cards(SERVICE, result, "https://x/card")
    assert card["indicator"] == "warning"
    assert card["summary"] == (
        "Outside the model's validated population: risk not reliable - Diabetes risk"
    )
    assert "%" not in card["summary"]
    first, _, rest = card["detail"].partition("\n\n")
    assert first == (
        "**Outside the validated population (female, age 21–81; Pima Indians diabetes (NIDDK; "
        "women of Pima heritage aged 21 or more)): age 10 is outside the training ages 21–81; "
        "sex male is not in the training population (female only). The risk is an "
        "extrapolation; do not rely on it.**"
    )
    assert rest.startswith(f"Calibrated probability of diabetes: **{result.probability:.1%}**")
    inside = assess_features(predictor, values | {"Age": 30.0}, age=30.0, sex="female")
    (plain,) = build_cards(SERVICE, inside, "https://x/card")
    assert plain["indicator"] == "critical"
    assert plain["summary"].startswith("Diabetes risk ")
