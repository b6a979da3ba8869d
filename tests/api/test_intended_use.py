"""An image outside the served model's intended use gets no finding through the API; the
refusal is recorded on the prediction row."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from clinsight.config import Settings, get_settings
from clinsight.store.tables import Prediction
from tests.support.service import Service


@pytest.fixture
def settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The service settings with the default: every model's gate refuses."""
    monkeypatch.setenv("CLINSIGHT_INTENDED_USE_WARN_ONLY", "[]")
    get_settings.cache_clear()
    return get_settings()


def test_a_chest_radiograph_sent_to_the_breast_model_gets_no_finding(
    service: Service, data_dir: Path
) -> None:
    client = service.client
    alice = service.login("alice")
    patient = {"mrn": "MRN-77", "name": "Grace Hopper", "birth_date": "1970-01-02", "sex": "female"}
    made = client.post("/api/v1/patients", json=patient, headers=alice)
    assert made.status_code == 201, made.text
    url = f"/api/v1/patients/{made.json()['id']}/predictions"
    dicom = (data_dir / "dicom" / "pydicom_data" / "RG1_J2KI.dcm").read_bytes()
    answer = client.post(url, headers=alice, files={"file": ("x.dcm", dicom)},
                         params={"confirm_patient_mismatch": True})  # fmt: skip
    assert answer.status_code == 201, answer.text
    found = answer.json()
    assert found["intended_use"] == "refused"
    assert found["predicted_label"] == "outside intended use"
    nulls = ("label", "probability", "label_probability", "positive_probability",
             "calibrated_confidence")  # fmt: skip
    assert {key: found[key] for key in nulls} == dict.fromkeys(nulls)
    assert found["intended_use_reasons"][0] == (
        "The DICOM header gives modality CR, but the model is meant for breast ultrasound "
        "images with modality US."
    )
    assert found["intended_use_reasons"][-1] == "No finding is given."
    state = client.app.state.clinsight  # type: ignore[attr-defined]
    with state.sessions() as session:
        row = session.execute(select(Prediction).where(Prediction.id == found["id"])).scalar_one()
    assert (row.intended_use, row.intended_use_reasons) == (
        "refused", found["intended_use_reasons"],
    )  # fmt: skip
    again = client.post(f"/api/v1/studies/{found['study_id']}/predictions", headers=alice)
    assert (again.json()["intended_use"], again.json()["label"]) == ("refused", None)
    fhir = client.get(f"/api/v1/predictions/{found['id']}/fhir", headers=alice)
    assert fhir.status_code == 200, fhir.text
    observation = fhir.json()
    assert (observation["resourceType"], observation["status"]) == ("Observation", "preliminary")
    assert "valueCodeableConcept" not in observation
    assert observation["dataAbsentReason"]["coding"][0]["code"] == "not-applicable"
    assert [note["text"] for note in observation["note"]] == found["intended_use_reasons"]
    assert observation["subject"]["reference"] == f"Patient/{made.json()['id']}"
