"""Survival over HTTP and on the web: a stored patient's curve (care team, audited), the
FHIR RiskAssessment, the page with its chart, and refusals beside the field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fhir.resources.R4B.riskassessment import RiskAssessment

from clinsight.config import Settings, get_settings
from tests.support.service import Service
from tests.support.survival_models import PATIENT, SURVIVAL_MODEL
from tests.support.web import form_csrf, web_login

PERSON = {"mrn": "MRN-SURV", "name": "Grace Hopper", "birth_date": "1960-01-01", "sex": "female"}


@pytest.fixture
def settings(
    settings: Settings, survival_registry: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """The API settings plus the survival model in production."""
    shutil.copytree(survival_registry / "_survival",
                    settings.resolved_registry_dir / "_survival", dirs_exist_ok=True)  # fmt: skip
    monkeypatch.setenv("CLINSIGHT_SURVIVAL_MODEL", SURVIVAL_MODEL)
    get_settings.cache_clear()
    return get_settings()


def _patient(service: Service, headers: dict[str, str]) -> str:
    response = service.client.post("/api/v1/patients", json=PERSON, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_a_clinician_gets_a_patients_survival_with_fhir(service: Service) -> None:
    client = service.client
    alice, bob, auditor = (service.login(u) for u in ("alice", "bob", "auditor"))
    patient_id = _patient(service, alice)
    url = f"/api/v1/survival/patients/{patient_id}"
    response = client.post(url, json={"inputs": PATIENT}, headers=alice)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == {"name": SURVIVAL_MODEL, "version": 1}
    assert [h["years"] for h in body["horizons"]] == [1.0, 3.0, 5.0]
    assert len(body["curve"]["days"]) == len(body["curve"]["low"]) == 60
    assert body["population_kaplan_meier"]["survival"][0] <= 1.0
    fhir = RiskAssessment.model_validate(body["fhir"])
    assert fhir.prediction is not None
    assert len(fhir.prediction) == 3
    assert client.post(url, json={"inputs": PATIENT}, headers=bob).status_code == 403
    too_far = client.post(url, json={"inputs": PATIENT, "horizons": [9]}, headers=alice)
    assert too_far.status_code == 422
    assert "longest supported horizon is 6.0 years" in too_far.json()["detail"]
    outside = client.post(url, json={"inputs": {**PATIENT, "age": 90}}, headers=alice)
    assert outside.status_code == 422
    assert "outside the training population's range 21-80 years" in outside.json()["detail"]
    entries = client.get("/api/v1/audit", params={"patient_id": patient_id}, headers=auditor)
    actions = [(e["action"], e["outcome"]) for e in entries.json()]
    assert ("survival.assess", "success") in actions
    assert ("survival.assess", "denied") in actions
    listed = client.get("/api/v1/models/survival", headers=auditor).json()
    assert [(m["name"], m["stage"], m["labels"]) for m in listed] == [
        (SURVIVAL_MODEL, "production", ["recurrence or death"])
    ]


def test_the_survival_page_draws_the_curves_and_refuses_beside_the_field(
    service: Service,
) -> None:
    client = service.client
    patient_id = _patient(service, service.login("alice"))
    web_login(service, "alice")
    form = client.get(f"/patients/{patient_id}/survival")
    assert form.status_code == 200
    assert '<select name="f_tgrade"' in form.text
    data = {"csrf": form_csrf(form.text), **{f"f_{k}": str(v) for k, v in PATIENT.items()}}
    result = client.post(f"/patients/{patient_id}/survival", data=data)
    assert result.status_code == 200, result.text
    for part in ('id="survival-chart"', 'id="survival-band"', 'id="population-km"',
                 'id="patient-curve"', "5 years</td>", "1 year</td>", "pnodes</td>"):  # fmt: skip
        assert part in result.text
    refused = client.post(f"/patients/{patient_id}/survival", data={**data, "f_age": "90"})
    assert refused.status_code == 422
    assert 'id="error-age"' in refused.text
