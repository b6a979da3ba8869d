"""The survival model's CDS Hooks patient-view service: discovery, a signed call answered
with an info card, the model card, 412 without prefetch, 401 without a token, and a patient
outside the training population answered with a warning card."""

from __future__ import annotations

import json
import shutil
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from clinsight.config import Settings, get_settings
from clinsight.interop.cds_client import SigningEhr
from tests.support.service import Service
from tests.support.survival_models import SURVIVAL_MODEL

PUBLIC = "https://clinsight.example.org"
SERVICE_ID = f"{SURVIVAL_MODEL}-survival"
SERVICE_URL = f"{PUBLIC}/cds-services/{SERVICE_ID}"


@pytest.fixture(scope="module")
def ehr() -> SigningEhr:
    return SigningEhr.create()


@pytest.fixture
def settings(
    settings: Settings, survival_registry: Path, ehr: SigningEhr, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:  # fmt: skip
    """The API settings plus the survival model in production and one trusted EHR."""
    shutil.copytree(survival_registry / "_survival",
                    settings.resolved_registry_dir / "_survival", dirs_exist_ok=True)  # fmt: skip
    monkeypatch.setenv("CLINSIGHT_SURVIVAL_MODEL", SURVIVAL_MODEL)
    monkeypatch.setenv(
        "CLINSIGHT_CDS_HOOKS_ISSUERS", json.dumps({ehr.issuer: str(ehr.write_jwks(tmp_path))})
    )
    monkeypatch.setenv("CLINSIGHT_PUBLIC_URL", PUBLIC)
    get_settings.cache_clear()
    return get_settings()


def _observation(ident: str, code: str, value: float, unit: str) -> dict[str, Any]:
    return {
        "resource": {
            "resourceType": "Observation", "id": ident, "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": (date.today() - timedelta(days=30)).isoformat(),
            "valueQuantity": {"value": value, "unit": unit},
        }
    }  # fmt: skip


def _prefetch(birth_date: str = "1970-06-01") -> dict[str, Any]:
    patient = {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": birth_date}
    observations = {
        "resourceType": "Bundle", "type": "searchset",
        "entry": [_observation("size", "21889-1", 2.5, "cm"),
                  _observation("nodes", "21893-3", 4, "{#}")],
    }  # fmt: skip
    return {"patient": patient, "observations": observations}


def _call(service: Service, token: str | None, prefetch: dict[str, Any]) -> Any:
    body = {"hook": "patient-view", "hookInstance": "7a1f0c2e-survival", "prefetch": prefetch,
            "context": {"userId": "Practitioner/1", "patientId": "p1"}}  # fmt: skip
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return service.client.post(f"/cds-services/{SERVICE_ID}", json=body, headers=headers)


def test_the_survival_service_is_discovered_and_answers_an_info_card(
    service: Service, ehr: SigningEhr
) -> None:
    listed = {e["id"]: e for e in service.client.get("/cds-services").json()["services"]}
    entry = listed[SERVICE_ID]
    assert entry["hook"] == "patient-view"
    assert entry["prefetch"]["patient"] == "Patient/{{context.patientId}}"
    assert (
        "combo-code=http://loinc.org|21889-1,http://loinc.org|21893-3"
        in (entry["prefetch"]["observations"])
    )
    response = _call(service, ehr.token(SERVICE_URL, alg="ES384"), _prefetch())
    assert response.status_code == 200, response.text
    (card,) = response.json()["cards"]
    assert card["indicator"] == "info"
    assert card["summary"].endswith(f"- Survival ({SURVIVAL_MODEL})")
    assert "risk of recurrence or death within" in card["summary"]
    assert "- within 1 years: **" in card["detail"]
    assert (
        "Missing inputs (the model imputed them): estrec, horTh, menostat, progrec, tgrade."
        in (card["detail"])
    )
    assert card["links"][0]["url"] == f"{SERVICE_URL}/model-card/1"
    markdown = service.client.get(f"/cds-services/{SERVICE_ID}/model-card/1")
    assert markdown.status_code == 200
    assert SURVIVAL_MODEL in markdown.text
    auditor = service.login("auditor")
    entries = service.client.get("/api/v1/audit", params={"limit": 20}, headers=auditor).json()
    calls = [e for e in entries if e["action"] == "cds.patient_view"]
    assert calls[0]["resource_id"] == SERVICE_ID


def test_the_survival_service_refuses_without_prefetch_or_token(
    service: Service, ehr: SigningEhr
) -> None:
    partial = {"patient": _prefetch()["patient"]}
    missing = _call(service, ehr.token(SERVICE_URL), partial)
    assert missing.status_code == 412
    assert "observations" in missing.json()["detail"]
    assert _call(service, None, _prefetch()).status_code == 401
    elsewhere = ehr.token(f"{PUBLIC}/cds-services/pima-synthea-risk")
    assert _call(service, elsewhere, _prefetch()).status_code == 401


def test_a_patient_outside_the_training_population_gets_a_warning_card(
    service: Service, ehr: SigningEhr
) -> None:
    response = _call(service, ehr.token(SERVICE_URL), _prefetch(birth_date="1930-01-01"))
    assert response.status_code == 200, response.text
    (card,) = response.json()["cards"]
    assert card["indicator"] == "warning"
    assert card["summary"].startswith("No estimate: outside the model's training population")
    assert "outside the training population's range 21-80 years" in card["detail"]
