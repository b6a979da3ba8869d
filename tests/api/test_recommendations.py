"""Treatment recommendations over HTTP: a clinician's suggestions for an OMOP person (JSON
and FHIR proposals, audited), refusals, and accept / reject feedback (stored, audited)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import select

from clinsight.config import Settings, get_settings
from clinsight.store.db import create_db_engine, session_factory
from clinsight.store.tables import AuditRow
from tests.support.omop import tiny_omop
from tests.support.recommend import register_tiny
from tests.support.service import Service


@pytest.fixture
def settings(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The API settings plus a tiny recommender and a tiny OMOP database."""
    register_tiny(settings.resolved_registry_dir)
    monkeypatch.setenv("CLINSIGHT_OMOP_URL", tiny_omop(tmp_path))
    monkeypatch.setenv("CLINSIGHT_RECOMMENDATION_MODEL", "tiny")
    get_settings.cache_clear()
    return get_settings()


def _actions(settings: Settings) -> list[tuple[str, str | None, dict[str, object]]]:
    engine = create_db_engine(settings=settings)
    with session_factory(engine)() as session:
        rows = session.scalars(select(AuditRow).order_by(AuditRow.seq)).all()
        found = [(r.action, r.resource_id, dict(r.details)) for r in rows]
    engine.dispose()
    return found


def test_a_clinician_gets_suggestions_with_reasons_and_fhir(service: Service) -> None:
    alice = service.login("alice")
    url = "/api/v1/recommendations/persons/2"
    response = service.client.get(url, params={"version": 1}, headers=alice)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["person_id"] == 2
    assert (body["model_name"], body["model_version"], body["cold_start"]) == ("tiny", 1, False)
    assert [s["treatment"] for s in body["suggestions"]] == ["RxNorm|3640", "RxNorm|723"]
    assert body["suggestions"][0]["explanation"] == (
        "3 of 11 patients with Sinusitis received Doxycycline"
    )
    assert body["suggestions"][0]["support"] == 3
    assert body["unchecked_allergies"] == ["Allergy to mold"]
    assert body["removed"] == []
    fhir = service.client.get(url, params={"version": 1, "format": "fhir"}, headers=alice)
    bundle = Bundle.model_validate(fhir.json())
    kinds = [e.resource.get_resource_type() for e in bundle.entry or [] if e.resource]
    assert kinds == ["Condition", "MedicationRequest", "MedicationRequest"]
    proposal = fhir.json()["entry"][1]["resource"]
    assert (proposal["status"], proposal["intent"]) == ("draft", "proposal")
    assert proposal["reasonReference"][0]["reference"] == fhir.json()["entry"][0]["fullUrl"]
    assert proposal["subject"] == {"reference": "Patient/2"}
    suggest = [a for a in _actions(service.settings) if a[0] == "recommendation.suggest"]
    assert [(a[1], a[2]["suggested"]) for a in suggest] == [("2", "RxNorm|3640,RxNorm|723")] * 2


def test_cold_start_unknown_drug_and_roles(service: Service) -> None:
    alice, admin = service.login("alice"), service.login("admin")
    client = service.client
    cold = client.get("/api/v1/recommendations/persons/1?version=1", headers=alice).json()
    assert cold["cold_start"] is True
    assert cold["model"] == "most_popular"
    assert cold["notes"][0].startswith("No treatment history")
    unknown = client.get(
        "/api/v1/recommendations/persons/2?version=1&active=RxNorm|999999", headers=alice
    )
    assert unknown.status_code == 422
    assert "RxNorm|999999 is unknown" in unknown.json()["detail"]
    missing = client.get("/api/v1/recommendations/persons/77?version=1", headers=alice)
    assert (missing.status_code, missing.json()["detail"]) == (
        422, "No person 77 in the OMOP database.")  # fmt: skip
    assert client.get("/api/v1/recommendations/persons/2", headers=admin).status_code == 403
    no_model = client.get("/api/v1/recommendations/persons/2", headers=alice)
    assert no_model.status_code == 404  # no production version


def test_accept_and_reject_are_stored_and_audited(service: Service) -> None:
    alice = service.login("alice")
    url = "/api/v1/recommendations/persons/2/feedback"
    made = service.client.post(
        url, headers=alice,
        json={"drug": "RxNorm|3640", "decision": "reject", "reason": "tetracycline rash",
              "model": "tiny", "version": 1},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    assert made.json()["reason"] == "tetracycline rash"
    service.client.post(url, json={"drug": "RxNorm|723", "decision": "accept"}, headers=alice)
    listed = service.client.get(url, headers=alice).json()
    assert [(d["drug"], d["decision"], d["user_id"]) for d in listed] == [
        ("RxNorm|3640", "reject", service.users["alice"]),
        ("RxNorm|723", "accept", service.users["alice"]),
    ]
    bad = service.client.post(url, json={"drug": "3640", "decision": "accept"}, headers=alice)
    assert bad.status_code == 422
    entries = [a for a in _actions(service.settings) if a[0] == "recommendation.feedback"]
    assert [(e[2]["drug"], e[2]["decision"], e[2]["has_reason"]) for e in entries] == [
        ("RxNorm|3640", "reject", True), ("RxNorm|723", "accept", False)]  # fmt: skip
    assert all("tetracycline" not in str(e[2]) for e in entries)
