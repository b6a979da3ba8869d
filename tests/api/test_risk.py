"""Risk over HTTP: a stored patient's risk (role- and patient-checked, audited), FHIR in/out,
the risk web page with its explanation chart, and CDS Hooks with EHR-signed JWTs."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from fhir.resources.R4B.riskassessment import RiskAssessment

from clinsight.config import Settings, get_settings
from clinsight.interop.cds_client import SigningEhr, prefetch_for
from clinsight.security.records import find_user
from tests.support.risk_models import copy_registry, synthea_file, train_pima_synthea
from tests.support.service import PASSWORD, Service
from tests.support.web import web_login

PUBLIC = "https://clinsight.example.org"
SERVICE_URL = f"{PUBLIC}/cds-services/pima-synthea-risk"
CODES = ("2339-0", "8462-4", "39156-5")
PATIENT = {"mrn": "MRN-RISK", "name": "Ada Lovelace", "birth_date": "1970-01-01", "sex": "female"}
VALUES = {"Glucose": 150.0, "BloodPressure": 70.0, "BMI": 35.0, "Age": 52.0}


@pytest.fixture(scope="module")
def risk_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("api-risk")
    train_pima_synthea(root)
    return root


@pytest.fixture(scope="module")
def ehr() -> SigningEhr:
    return SigningEhr.create()


@pytest.fixture
def settings(
    settings: Settings, risk_registry: Path, ehr: SigningEhr, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:  # fmt: skip
    """The API settings plus the risk model in production and one trusted EHR."""
    copy_registry(risk_registry / "_risk", settings.resolved_registry_dir / "_risk")
    issuers = {ehr.issuer: str(ehr.write_jwks(tmp_path))}
    monkeypatch.setenv("CLINSIGHT_CDS_HOOKS_ISSUERS", json.dumps(issuers))
    monkeypatch.setenv("CLINSIGHT_PUBLIC_URL", PUBLIC)
    get_settings.cache_clear()
    return get_settings()


def _patient(service: Service, headers: dict[str, str], **changes: str) -> str:
    body = {**PATIENT, **changes}
    response = service.client.post("/api/v1/patients", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_a_clinician_assesses_a_patient_of_their_care_team(service: Service) -> None:
    client = service.client
    alice, bob, auditor = (service.login(u) for u in ("alice", "bob", "auditor"))
    patient_id = _patient(service, alice)
    url = f"/api/v1/patients/{patient_id}/risk"
    response = client.post(url, json={"inputs": VALUES}, headers=alice)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == {"name": "pima-synthea", "version": 1}
    assert body["level"] in ("info", "warning", "critical")
    assert body["explanation"]["contributions"][0]["feature"] == "Glucose"
    fhir = RiskAssessment.model_validate(body["fhir"])
    assert fhir.subject.reference == f"Patient/{patient_id}"
    assert fhir.prediction is not None
    probability = fhir.prediction[0].probabilityDecimal
    assert probability is not None
    assert float(probability) == pytest.approx(body["probability"])
    assert client.post(url, json={"inputs": VALUES}, headers=bob).status_code == 403
    assert client.post(url, json={"inputs": VALUES}, headers=auditor).status_code == 403
    bad = client.post(url, json={"inputs": {"Insulin": 3}}, headers=alice)
    assert bad.status_code == 422
    assert "'Insulin' is not an input" in bad.json()["detail"]
    entries = client.get("/api/v1/audit", params={"patient_id": patient_id}, headers=auditor)
    actions = [(e["action"], e["outcome"]) for e in entries.json()]
    assert ("risk.assess", "success") in actions
    assert ("risk.assess", "denied") in actions
    assert len(client.get("/api/v1/models/risk", headers=auditor).json()) == 1


def test_a_fhir_bundle_in_gives_a_risk_assessment_out(service: Service) -> None:
    alice = service.login("alice")
    bundle = json.loads(synthea_file(2).read_text())
    response = service.client.post("/api/v1/risk/fhir", json=bundle, headers=alice)
    assert response.status_code == 200, response.text
    resource = RiskAssessment.model_validate(response.json())
    assert resource.method is not None
    assert resource.method.coding is not None
    assert resource.method.coding[0].code == "pima-synthea/1"
    extension = response.json()["extension"]  # a man born in 1932: outside Pima's women 21-81
    assert extension[0]["url"] == "urn:clinsight:outside-validated-population"
    assert "sex male is not in the training population" in extension[0]["valueString"]
    not_fhir = service.client.post("/api/v1/risk/fhir", json={"resourceType": "Bundle",
                                   "type": 3}, headers=alice)  # fmt: skip
    assert not_fhir.status_code == 422


def test_the_risk_page_draws_the_explanation(service: Service) -> None:
    client = service.client
    patient_id = _patient(service, service.login("alice"))
    login = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
    assert login is not None
    credentials = {"username": "alice", "password": PASSWORD, "csrf": login.group(1)}
    assert client.post("/login", data=credentials).status_code == 200
    form = client.get(f"/patients/{patient_id}/risk")
    assert form.status_code == 200
    assert 'name="f_Glucose"' in form.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    data = {"csrf": csrf.group(1), "f_Glucose": "150", "f_BMI": "35", "f_Age": "52"}
    result = client.post(f"/patients/{patient_id}/risk", data=data)
    assert result.status_code == 200, result.text
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in result.text
    assert result.text.count("<rect ") == 4
    assert "BloodPressure: not given" in result.text


def _call(service: Service, token: str | None, prefetch: dict[str, object] | None) -> object:
    body: dict[str, object] = {
        "hook": "patient-view", "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {"userId": "Practitioner/1", "patientId": "ignored"},
    }  # fmt: skip
    if prefetch is not None:
        body["prefetch"] = prefetch
        body["context"] = {"userId": "Practitioner/1", "patientId": prefetch["patient"]["id"]}  # type: ignore[index]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return service.client.post("/cds-services/pima-synthea-risk", json=body, headers=headers)


def test_cds_hooks_discovery_call_feedback_and_model_card(
    service: Service, ehr: SigningEhr
) -> None:
    client = service.client
    listed = {e["id"]: e for e in client.get("/cds-services").json()["services"]}
    assert set(listed) == {  # the configured models and the medication-order services
        "pima-synthea-risk", "gbsg2-survival", "mortality48-deterioration",
        "medication-order-select", "medication-order-sign",
    }  # fmt: skip
    assert listed["pima-synthea-risk"]["hook"] == "patient-view"
    prefetch = prefetch_for(synthea_file(2), CODES)
    response = _call(service, ehr.token(SERVICE_URL, alg="ES384"), prefetch)
    assert response.status_code == 200, response.text  # type: ignore[attr-defined]
    (card,) = response.json()["cards"]  # type: ignore[attr-defined]
    assert len(card["summary"]) < 140
    # Synthea patient 2 is a man born in 1932: outside Pima's women aged 21-81.
    assert card["indicator"] == "warning"
    assert card["summary"] == (
        "Outside the model's validated population: risk not reliable - Risk (pima-synthea)"
    )
    assert "Calibrated probability of diabetes: **" in card["detail"]
    assert card["links"][0]["url"] == f"{SERVICE_URL}/model-card/1"
    markdown = client.get("/cds-services/pima-synthea-risk/model-card/1")
    assert markdown.text.startswith("# Model card: pima-synthea v1")
    feedback = {"feedback": [{"card": card["uuid"], "outcome": "overridden",
                              "overrideReason": {"reason": {"code": "not-relevant"}},
                              "outcomeTimestamp": "2026-01-01T00:00:00Z"}]}  # fmt: skip
    token = ehr.token(f"{SERVICE_URL}")
    done = client.post("/cds-services/pima-synthea-risk/feedback", json=feedback,
                       headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert done.status_code == 200
    for reason in ("not relevant", {"reason": "not relevant"}):  # not a Coding: refused, 422
        bad = {"feedback": [{**feedback["feedback"][0], "overrideReason": reason}]}
        signed = {"Authorization": f"Bearer {ehr.token(SERVICE_URL)}"}
        refused = client.post("/cds-services/pima-synthea-risk/feedback", json=bad, headers=signed)
        assert refused.status_code == 422, refused.text
    auditor = service.login("auditor")
    entries = client.get("/api/v1/audit", params={"limit": 20}, headers=auditor).json()
    assert {"cds.patient_view", "cds.feedback"} <= {e["action"] for e in entries}


def test_cds_hooks_refuses_missing_prefetch_and_bad_tokens(
    service: Service, ehr: SigningEhr
) -> None:
    prefetch = prefetch_for(synthea_file(2), CODES)
    partial = {"patient": prefetch["patient"]}
    missing = _call(service, ehr.token(SERVICE_URL), partial)
    assert missing.status_code == 412  # type: ignore[attr-defined]
    assert "observations" in missing.json()["detail"]  # type: ignore[attr-defined]
    stranger = SigningEhr.create("https://stranger.example.org")
    cases = {
        "no token": None,
        "wrong issuer": stranger.token(SERVICE_URL),
        "expired": ehr.token(SERVICE_URL, age=600),
        "bad signature": SigningEhr.create(ehr.issuer).token(SERVICE_URL),
        "wrong audience": ehr.token(f"{PUBLIC}/cds-services/other"),
    }
    for case, token in cases.items():
        response = _call(service, token, prefetch)
        assert response.status_code == 401, case  # type: ignore[attr-defined]


def test_risk_models_over_the_models_api_with_audited_stage_changes(service: Service) -> None:
    client, admin = service.client, service.login("admin")
    auditor, alice = service.login("auditor"), service.login("alice")
    listed = client.get("/api/v1/models/risk", headers=auditor).json()
    assert [(m["kind"], m["name"], m["version"], m["stage"], m["task"]) for m in listed] == [
        ("risk", "pima-synthea", 1, "production", "pima")
    ]
    assert listed[0]["labels"] == ["diabetes"]
    assert listed[0]["thresholds"] == {"warning": 0.2, "critical": 0.5}
    card = client.get("/api/v1/models/risk/pima-synthea/1", headers=alice).json()
    assert card["card_markdown"].startswith("# Model card: pima-synthea v1\n")
    bundle = json.loads(synthea_file(2).read_text())
    assert client.post("/api/v1/risk/fhir", json=bundle, headers=alice).status_code == 200
    archive = "/api/v1/models/risk/pima-synthea/1/archive"
    assert client.post(archive, headers=alice, json={}).status_code == 403
    archived = client.post(archive, headers=admin, json={"note": "recalibrating"})
    assert (archived.status_code, archived.json()["stage"]) == (200, "archived")
    refused = client.post("/api/v1/risk/fhir", json=bundle, headers=alice)  # the next request
    assert refused.status_code == 404
    assert "has no production version" in refused.json()["detail"]
    promoted = client.post("/api/v1/models/risk/pima-synthea/1/promote", headers=admin, json={})
    assert (promoted.status_code, promoted.json()["stage"]) == (200, "production")
    assert client.post("/api/v1/risk/fhir", json=bundle, headers=alice).status_code == 200
    entries = client.get("/api/v1/audit", params={"limit": 50}, headers=auditor).json()
    changes = [
        (e["action"], e["resource_type"], e["resource_id"], e["actor_id"], e["details"])
        for e in reversed(entries)
        if e["action"].startswith("model.")
    ]
    with client.app.state.clinsight.sessions() as session:  # type: ignore[attr-defined]
        account = find_user(session, "admin")
    assert account is not None
    admin_id = account.id
    assert changes == [
        ("model.archive", "risk_model", "pima-synthea:1", admin_id, {"stage": "archived"}),
        ("model.promote", "risk_model", "pima-synthea:1", admin_id, {"stage": "production"}),
    ]
    verified = client.get("/api/v1/audit/verify", headers=auditor).json()
    assert verified["ok"] is True
    stages = json.loads(
        (
            service.settings.resolved_registry_dir / "_risk" / "pima-synthea" / "stages.json"
        ).read_text(encoding="utf-8")
    )
    assert [(h["to"], h["actor"], h["note"]) for h in stages["history"][-2:]] == [
        ("archived", "admin", "recalibrating"),
        ("production", "admin", ""),
    ]
    web_login(service, "auditor")
    page = client.get("/models")
    assert page.status_code == 200
    assert '<section class="card" id="risk-pima-synthea-1">' in page.text
    assert "<td>pima-synthea</td><td>1</td>" in page.text


GLUCOSE_2000 = "Glucose 2000 mg/dL is outside the plausible range 10–1500 mg/dL"


def test_implausible_inputs_are_refused_naming_the_field(service: Service) -> None:
    client = service.client
    alice = service.login("alice")
    patient_id = _patient(service, alice)
    inputs = {**VALUES, "Glucose": 2000.0}
    refused = client.post(f"/api/v1/patients/{patient_id}/risk", json={"inputs": inputs},
                          headers=alice)  # fmt: skip
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["detail"] == f"{GLUCOSE_2000}; correct the value or leave it empty (missing)."
    assert problem["errors"] == [{"location": "inputs.Glucose", "message": GLUCOSE_2000}]
    auditor = service.login("auditor")
    entries = client.get("/api/v1/audit", params={"patient_id": patient_id}, headers=auditor)
    (entry,) = [e for e in entries.json() if e["outcome"] == "failure"]
    assert (entry["action"], entry["details"]["level"], entry["details"]["invalid"]) == (
        "risk.assess", "refused", "Glucose",
    )  # fmt: skip
    bundle = json.loads(synthea_file(2).read_text())
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "Patient":
            entry["resource"]["birthDate"] = "1850-01-01"
    old = client.post("/api/v1/risk/fhir", json=bundle, headers=alice)
    assert old.status_code == 422
    (error,) = old.json()["errors"]
    assert error["location"] == "inputs.Age"
    pattern = r"Patient/\S+: Age 1\d\d(\.\d+)? years is outside the plausible range 0–125 years"
    assert re.fullmatch(pattern, error["message"])
    entries = client.get("/api/v1/audit", params={"limit": 5}, headers=auditor).json()
    fhir_refusal = next(e for e in entries if e["action"] == "risk.assess_fhir")
    assert (fhir_refusal["outcome"], fhir_refusal["details"]["invalid"]) == ("failure", "Age")


def test_a_boy_of_ten_scored_by_the_pima_model_is_outside_its_population(
    service: Service,
) -> None:
    """The age comes from the stored birth date (the Age input says 52), the sex from the
    record: the API, the FHIR resource, the audit entry and the web result all say so."""
    client, alice = service.client, service.login("alice")
    born = (date.today() - timedelta(days=3700)).isoformat()
    patient_id = _patient(service, alice, mrn="MRN-BOY", birth_date=born, sex="male")
    response = client.post(f"/api/v1/patients/{patient_id}/risk", json={"inputs": VALUES},
                           headers=alice)  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    (warning,) = body["warnings"]
    assert warning["code"] == "outside_validated_population"
    assert warning["reasons"] == [
        "age 10 is outside the training ages 21–81",
        "sex male is not in the training population (female only)",
    ]
    assert body["validated_population"]["description"] == "female, age 21–81"
    assert body["fhir"]["extension"][0]["valueString"] == warning["message"]
    assert body["fhir"]["note"][0]["text"] == warning["message"]
    auditor = service.login("auditor")
    entries = client.get("/api/v1/audit", params={"patient_id": patient_id}, headers=auditor)
    (assessed,) = [e for e in entries.json() if e["action"] == "risk.assess"]
    assert assessed["details"]["outside_population"] is True
    web_login(service, "alice")
    form = client.get(f"/patients/{patient_id}/risk")
    assert 'id="f_Age" value="10"> <span class="unit" id="unit-Age">years</span> ' in form.text
    assert "(from the record: birth date)" in form.text
    assert 'id="f_Glucose" value="">' in form.text
    assert "Validated population: female, age 21–81 (Pima Indians diabetes" in form.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    page = client.post(f"/patients/{patient_id}/risk",
                       data={"csrf": csrf.group(1), "f_Glucose": "150", "f_Age": "10"})  # fmt: skip
    assert page.status_code == 200
    assert (
        '<p class="warning" id="risk-population-warning"><strong>Outside the validated '
        "population (female, age 21–81; "
    ) in page.text


def test_the_risk_page_shows_an_implausible_value_beside_its_field(service: Service) -> None:
    client = service.client
    patient_id = _patient(service, service.login("alice"))
    web_login(service, "alice")
    form = client.get(f"/patients/{patient_id}/risk")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    data = {"csrf": csrf.group(1), "f_Glucose": "2000", "f_BMI": "35", "f_Age": "52"}
    page = client.post(f"/patients/{patient_id}/risk", data=data)
    assert page.status_code == 422
    assert 'id="risk-result"' not in page.text
    assert (
        '<input name="f_Glucose" id="f_Glucose" value="2000" aria-invalid="true" '
        'aria-describedby="error-Glucose"> <span class="unit" id="unit-Glucose">mg/dL (2-h '
        "OGTT)</span></label>\n"
        f'  <p class="error" id="error-Glucose">{GLUCOSE_2000}</p>'
    ) in page.text
    assert 'id="f_BMI" value="35"> <span class="unit" id="unit-BMI">kg/m²</span>' in page.text
    typo = client.post(f"/patients/{patient_id}/risk", data={**data, "f_Glucose": "1O0"})
    assert typo.status_code == 422
    assert (
        '<p class="error" id="error-Glucose">Glucose must be a number (mg/dL); '
        "&#39;1O0&#39; was entered</p>"
    ) in typo.text
    assert "row 0" not in typo.text
    auditor = service.login("auditor")
    entries = client.get("/api/v1/audit", params={"patient_id": patient_id}, headers=auditor)
    refusals = [
        e["details"]
        for e in entries.json()
        if (e["action"], e["outcome"]) == ("risk.assess", "failure")
    ]
    assert [(d["level"], d["invalid"]) for d in refusals] == [
        ("refused", "Glucose"), ("refused", "Glucose"),
    ]  # fmt: skip


def test_a_cds_call_with_an_implausible_value_answers_a_warning_card(
    service: Service, ehr: SigningEhr
) -> None:
    prefetch = prefetch_for(synthea_file(2), CODES)
    prefetch["patient"]["birthDate"] = "1850-01-01"
    response = _call(service, ehr.token(SERVICE_URL), prefetch)
    assert response.status_code == 200, response.text  # type: ignore[attr-defined]
    (card,) = response.json()["cards"]  # type: ignore[attr-defined]
    assert card["indicator"] == "warning"
    assert card["summary"] == "No risk: implausible input in the record - " + card["summary"][43:]
    assert card["detail"].startswith(
        "The risk was not computed, because these values lie outside their plausible range "
        "(an entry or coding error?):\n- Patient/"
    )
    assert "years is outside the plausible range 0–125 years\n\nCorrect them" in card["detail"]
    auditor = service.login("auditor")
    entries = service.client.get("/api/v1/audit", params={"limit": 5}, headers=auditor).json()
    refused = [e for e in entries if e["action"] == "cds.patient_view"]
    assert refused[0]["details"]["level"] == "refused"
    assert refused[0]["details"]["implausible"] == "Age"
