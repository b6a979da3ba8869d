"""The medication-order CDS Hooks services (order-select, order-sign): discovery, a signed
call with draft MedicationRequests (RxNorm) answered by a critical interaction card, an
allergy card and an alternatives card from the recommender, each problem with a suggestion
that deletes the draft; 412 without prefetch; 401 without a token; audited."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from clinsight.config import Settings, get_settings
from clinsight.interop.cds_client import SigningEhr
from clinsight.registry.recommendation import REGISTRY
from clinsight.registry.stages import Stage
from tests.support.recommend import register_tiny
from tests.support.service import Service

PUBLIC = "https://clinsight.example.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"


@pytest.fixture(scope="module")
def ehr() -> SigningEhr:
    return SigningEhr.create()


@pytest.fixture
def settings(
    settings: Settings, ehr: SigningEhr, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """The API settings, a tiny recommender in production and one trusted EHR."""
    register_tiny(settings.resolved_registry_dir)
    REGISTRY.promote(settings.resolved_registry_dir, "tiny", 1, Stage.PRODUCTION)
    monkeypatch.setenv("CLINSIGHT_RECOMMENDATION_MODEL", "tiny")
    monkeypatch.setenv(
        "CLINSIGHT_CDS_HOOKS_ISSUERS", json.dumps({ehr.issuer: str(ehr.write_jwks(tmp_path))})
    )
    monkeypatch.setenv("CLINSIGHT_PUBLIC_URL", PUBLIC)
    get_settings.cache_clear()
    return get_settings()


def _med(ident: str, code: str, name: str, status: str) -> dict[str, Any]:
    return {"resource": {
        "resourceType": "MedicationRequest", "id": ident, "status": status, "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code,
                                                  "display": name}]}}}  # fmt: skip


def _bundle(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "entry": list(entries)}


def _body(hook: str, **prefetch_changes: Any) -> dict[str, Any]:
    allergy = {
        "resource": {
            "resourceType": "AllergyIntolerance",
            "id": "a1",
            "criticality": "high",
            "patient": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": RXNORM, "code": "723", "display": "Amoxicillin"}]},
        }
    }
    free = {
        "resource": {
            "resourceType": "AllergyIntolerance",
            "id": "a2",
            "patient": {"reference": "Patient/p1"},
            "code": {"text": "mould"},
        }
    }
    condition = {
        "resource": {
            "resourceType": "Condition",
            "id": "c1",
            "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": SNOMED, "code": "36971009", "display": "Sinusitis"}]},
        }
    }
    prefetch = {
        "patient": {"resourceType": "Patient", "id": "p1", "gender": "male",
                    "birthDate": "1950-01-01"},
        "medications": _bundle(_med("m1", "11289", "Warfarin", "active")),
        "allergies": _bundle(allergy, free), "conditions": _bundle(condition),
        **prefetch_changes,
    }  # fmt: skip
    drafts = {"resourceType": "Bundle", "type": "collection",
              "entry": [_med("d1", "5640", "Ibuprofen", "draft"),
                        _med("d2", "723", "Amoxicillin", "draft")]}  # fmt: skip
    selections = ["MedicationRequest/d1", "MedicationRequest/d2"]
    return {"hook": hook, "hookInstance": "2c4e-orders", "prefetch": prefetch,
            "context": {"userId": "Practitioner/1", "patientId": "p1", "draftOrders": drafts,
                        "selections": selections}}  # fmt: skip


def _call(service: Service, ehr: SigningEhr, hook: str, body: dict[str, Any]) -> Any:
    url = f"{PUBLIC}/cds-services/medication-{hook}"
    headers = {"Authorization": f"Bearer {ehr.token(url)}"}
    return service.client.post(f"/cds-services/medication-{hook}", json=body, headers=headers)


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_draft_orders_get_interaction_allergy_and_alternatives_cards(
    service: Service, ehr: SigningEhr, hook: str
) -> None:
    listed = {e["id"]: e for e in service.client.get("/cds-services").json()["services"]}
    entry = listed[f"medication-{hook}"]
    assert entry["hook"] == hook
    assert entry["prefetch"]["medications"] == (
        "MedicationRequest?patient={{context.patientId}}&status=active"
    )
    response = _call(service, ehr, hook, _body(hook))
    assert response.status_code == 200, response.text
    interaction, allergy, alternatives = response.json()["cards"]
    assert interaction["indicator"] == "critical"
    assert interaction["summary"].startswith("Interaction: Ibuprofen - interacts with active "
                                             "Warfarin")  # fmt: skip
    assert "COUMADIN" in interaction["detail"]
    (action,) = interaction["suggestions"][0]["actions"]
    assert action == {"type": "delete", "description": "Remove MedicationRequest/d1",
                      "resourceId": ["MedicationRequest/d1"]}  # fmt: skip
    assert allergy["indicator"] == "critical"
    assert allergy["summary"] == "Allergy: Amoxicillin - recorded allergy to Amoxicillin"
    assert allergy["suggestions"][0]["actions"][0]["resourceId"] == ["MedicationRequest/d2"]
    assert alternatives["indicator"] == "info"
    assert alternatives["summary"] == "Alternatives to Ibuprofen, Amoxicillin: Doxycycline"
    assert "3 of 11 patients with Sinusitis received Doxycycline" in alternatives["detail"]
    assert "not checked by code: mould" in alternatives["detail"]
    assert alternatives["source"]["label"] == "Clinsight tiny v1"


def test_order_hooks_refuse_without_prefetch_or_token(service: Service, ehr: SigningEhr) -> None:
    body = _body("order-sign", allergies=None)
    refused = _call(service, ehr, "order-sign", body)
    assert refused.status_code == 412
    assert "allergies" in refused.json()["detail"]
    anonymous = service.client.post("/cds-services/medication-order-sign", json=_body("order-sign"))
    assert anonymous.status_code == 401
    wrong = _call(service, ehr, "order-sign", _body("order-select"))
    assert wrong.status_code == 422


def test_a_moderate_interaction_is_a_warning_and_a_safe_order_gets_no_card(
    service: Service, ehr: SigningEhr
) -> None:
    body = _body("order-sign", medications=_bundle(_med("m1", "1191", "Aspirin", "active")),
                 allergies=_bundle())  # fmt: skip
    body["context"]["draftOrders"]["entry"] = [_med("d1", "5640", "Ibuprofen", "draft")]
    (card, *_) = _call(service, ehr, "order-sign", body).json()["cards"]
    assert card["indicator"] == "warning"
    body["context"]["draftOrders"]["entry"] = [_med("d3", "3640", "Doxycycline", "draft")]
    assert _call(service, ehr, "order-sign", body).json()["cards"] == []


def test_the_hospital_interaction_file_is_laid_over_the_shipped_table(
    service: Service, ehr: SigningEhr, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv = tmp_path / "hospital-ddi.csv"
    csv.write_text("drug_a,drug_b,severity,text,citation\n"
                   "3640,11289,major,raises the INR,Pharmacy committee 2024\n")  # fmt: skip
    monkeypatch.setattr(service.settings, "interactions_csv", csv)
    body = _body("order-select", allergies=_bundle())
    body["context"]["draftOrders"]["entry"] = [
        _med("d1", "5640", "Ibuprofen", "draft"),
        _med("d3", "3640", "Doxycycline", "draft"),
    ]
    body["context"]["selections"] = ["MedicationRequest/d1", "MedicationRequest/d3"]
    cards = _call(service, ehr, "order-select", body).json()["cards"]
    shipped, hospital = cards[0], cards[1]
    assert "COUMADIN" in shipped["detail"]
    assert hospital["indicator"] == "critical"
    assert hospital["summary"].startswith("Interaction: Doxycycline - interacts with active "
                                          "Warfarin: raises the INR")  # fmt: skip
    assert "hospital-ddi.csv line 2: Pharmacy committee 2024" in hospital["detail"]
