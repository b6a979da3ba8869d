"""Progression over HTTP: a stored patient's deterioration risk from a FHIR Bundle or a
PhysioNet stay (care team, audited), the RiskAssessment whose basis names the
Observations, refusals in words (422), and the CDS Hooks deterioration card."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.riskassessment import RiskAssessment

from clinsight.config import Settings, get_settings
from clinsight.inference.progression import alert_level
from clinsight.interop.cds_client import SigningEhr
from clinsight.registry.progression import REGISTRY
from clinsight.registry.stages import Stage
from tests.support.progression import set_a, stay_bundle, train_tiny
from tests.support.service import Service
from tests.support.web import web_login

PUBLIC = "https://clinsight.example.org"
SERVICE = "tiny-deterioration"
SERVICE_URL = f"{PUBLIC}/cds-services/{SERVICE}"
PERSON = {"mrn": "MRN-PROG", "name": "Florence Nightingale", "birth_date": "1950-05-12",
          "sex": "female"}  # fmt: skip


@pytest.fixture(scope="module")
def progression_registry(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("api-progression")
    version = train_tiny(data_dir, root / "registry", root)
    REGISTRY.promote(root / "registry", "tiny", version.version, Stage.PRODUCTION)
    return root / "registry"


@pytest.fixture(scope="module")
def ehr() -> SigningEhr:
    return SigningEhr.create()


@pytest.fixture
def settings(
    settings: Settings, progression_registry: Path, ehr: SigningEhr, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:  # fmt: skip
    """The API settings plus the tiny progression model in production and one EHR."""
    target = settings.resolved_registry_dir / "_progression"
    shutil.copytree(progression_registry / "_progression", target, dirs_exist_ok=True)
    monkeypatch.setenv("CLINSIGHT_PROGRESSION_MODEL", "tiny")
    monkeypatch.setenv("CLINSIGHT_CDS_HOOKS_ISSUERS",
                       json.dumps({ehr.issuer: str(ehr.write_jwks(tmp_path))}))  # fmt: skip
    monkeypatch.setenv("CLINSIGHT_PUBLIC_URL", PUBLIC)
    get_settings.cache_clear()
    return get_settings()


@pytest.fixture
def stay(data_dir: Path) -> Path:
    folder, _ = set_a(data_dir)
    return folder / "132539.txt"


def _patient(service: Service, headers: dict[str, str]) -> str:
    response = service.client.post("/api/v1/patients", json=PERSON, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_a_clinician_gets_the_risk_from_a_bundle_with_its_fhir_basis(
    service: Service, stay: Path
) -> None:
    client = service.client
    alice, bob, auditor = (service.login(u) for u in ("alice", "bob", "auditor"))
    patient_id = _patient(service, alice)
    url = f"/api/v1/progression/patients/{patient_id}"
    bundle = stay_bundle(stay)
    response = client.post(url, json={"bundle": bundle}, headers=alice)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"]["name"] == "tiny"
    assert body["model"]["version"] == 1
    assert 0 < body["probability"] == body["risk"] < 1
    assert body["level"] in ("info", "warning", "critical")
    assert body["drivers"]
    assert {"variable", "hours", "contribution"} <= set(body["drivers"][0])
    assert len(body["explanation"]["heat"]) == 48
    fhir = RiskAssessment.model_validate(body["fhir"])
    assert fhir.basis is not None
    observation_ids = {e["resource"]["id"] for e in bundle["entry"][1:]}
    assert {b.reference for b in fhir.basis} <= {f"Observation/{i}" for i in observation_ids}
    assert len(fhir.basis) > 20
    assert "progression model" in (fhir.method.text or "")  # type: ignore[union-attr]
    text = client.post(url, json={"stay": stay.read_text()}, headers=alice)
    assert text.status_code == 200, text.text
    # the same series either way; the file adds the descriptors (age, sex, height, ICU type)
    assert abs(text.json()["risk"] - body["risk"]) < 0.05
    assert text.json()["basis"] == []
    assert client.post(url, json={"bundle": bundle}, headers=bob).status_code == 403
    entries = client.get("/api/v1/audit", params={"patient_id": patient_id}, headers=auditor)
    actions = [(e["action"], e["outcome"]) for e in entries.json()]
    assert actions.count(("progression.assess", "success")) == 2
    assert ("progression.assess", "denied") in actions
    # both assessments are kept for the patient record's timeline
    web_login(service, "alice")
    record = client.get(f"/patients/{patient_id}")
    assert record.status_code == 200
    assert record.text.count("Deterioration risk:") == 2


def _observation(**changes: Any) -> dict[str, Any]:
    resource = {
        "resourceType": "Observation", "id": "hr", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "effectiveDateTime": "2026-01-01T02:00:00+00:00",
        "valueQuantity": {"value": 88, "unit": "/min", "code": "/min"},
    }  # fmt: skip
    return {"resource": {**resource, **changes}}


ENCOUNTER = {"resource": {
    "resourceType": "Encounter", "id": "icu", "status": "finished", "class": {"code": "IMP"},
    "period": {"start": "2026-01-01T01:00:00+00:00"},
}}  # fmt: skip


@pytest.mark.parametrize(
    ("entries", "words"),
    [
        ([ENCOUNTER], "holds no Observation"),
        ([_observation(code={"coding": [{"system": "http://loinc.org", "code": "0000-0"}]})],
         "is not a variable of the physionet2012 spec"),
        ([_observation(valueQuantity={"value": 88, "code": "furlongs"})],
         "a unit the variable spec does not know"),
        ([ENCOUNTER, _observation(effectiveDateTime="2026-01-01T00:00:00+00:00")],
         "time goes backwards"),
        ([_observation(valueQuantity={"value": 900, "code": "/min"})],
         "no usable time-series observation"),
    ],
)  # fmt: skip
def test_bad_bundles_are_refused_in_words(
    service: Service, entries: list[dict[str, Any]], words: str
) -> None:
    alice = service.login("alice")
    patient_id = _patient(service, alice)
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    response = service.client.post(
        f"/api/v1/progression/patients/{patient_id}", json={"bundle": bundle}, headers=alice
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert words in response.json()["detail"]


def test_a_stay_going_back_in_time_or_both_inputs_are_refused(service: Service) -> None:
    alice = service.login("alice")
    url = f"/api/v1/progression/patients/{_patient(service, alice)}"
    backwards = "Time,Parameter,Value\n01:00,HR,80\n00:30,HR,82\n"
    response = service.client.post(url, json={"stay": backwards}, headers=alice)
    assert response.status_code == 422
    assert "goes backwards" in response.json()["detail"]
    unknown = service.client.post(url, json={"stay": "Time,Parameter,Value\n01:00,Foo,1\n"},
                                  headers=alice)  # fmt: skip
    assert "unknown variable 'Foo'" in unknown.json()["detail"]
    both = service.client.post(url, json={"stay": backwards, "bundle": {}}, headers=alice)
    assert both.status_code == 422
    assert "not both or neither" in both.json()["detail"]


def _cds(service: Service, token: str, prefetch: dict[str, Any] | None) -> Any:
    body: dict[str, Any] = {"hook": "patient-view", "hookInstance": "h-1",
                            "context": {"userId": "Practitioner/1", "patientId": "p1"}}  # fmt: skip
    if prefetch is not None:
        body["prefetch"] = prefetch
    return service.client.post(
        f"/cds-services/{SERVICE}", json=body, headers={"Authorization": f"Bearer {token}"}
    )


def test_the_deterioration_card_by_validation_thresholds(
    service: Service, ehr: SigningEhr, stay: Path, progression_registry: Path
) -> None:
    client = service.client
    entries = client.get("/cds-services").json()["services"]
    (entry,) = [e for e in entries if e["id"] == SERVICE]
    assert "http://loinc.org|8867-4" in entry["prefetch"]["observations"]
    bundle = stay_bundle(stay)
    observations = {"resourceType": "Bundle", "type": "searchset", "entry": bundle["entry"][1:]}
    patient = {"resourceType": "Patient", "id": "p1", "gender": "male", "birthDate": "1972-01-01"}
    missing = _cds(service, ehr.token(SERVICE_URL), {"patient": patient})
    assert missing.status_code == 412
    response = _cds(
        service, ehr.token(SERVICE_URL), {"patient": patient, "observations": observations}
    )
    assert response.status_code == 200, response.text
    (card,) = response.json()["cards"]
    version = REGISTRY.get(progression_registry, "tiny", 1)
    risk = float(card["detail"].split("**")[1].rstrip("%")) / 100
    assert card["indicator"] == alert_level(version, risk)
    assert len(card["summary"]) < 140
    assert card["links"][0]["url"] == f"{SERVICE_URL}/model-card/1"
    assert client.get(f"/cds-services/{SERVICE}/model-card/1").text.startswith("# Model card")
    assert _cds(service, "not-a-jwt", None).status_code == 401


def test_alert_levels_follow_the_stored_thresholds_with_a_fallback(
    progression_registry: Path,
) -> None:
    version = REGISTRY.get(progression_registry, "tiny", 1)
    cuts = {"warning": 0.2, "critical": 0.5}
    with_cuts = replace(version, thresholds=cuts)
    assert [alert_level(with_cuts, r) for r in (0.1, 0.2, 0.49, 0.5)] == [
        "info", "warning", "warning", "critical"
    ]  # fmt: skip
    old = replace(version, thresholds=None)  # registered before thresholds were chosen
    assert alert_level(old, 0.99) == "info"
