"""Safe image answers over the API: a DICOM naming another patient needs an explicit flag,
a patient outside the model's intended population gets a warning, and each model version is
monitored (agreement, drift in /metrics) with recalibrations proposed, never applied."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, insert, select

from clinsight.data.intended_population import IntendedPopulation, age_in_years
from clinsight.inference.predictors import load_torch_model
from clinsight.registry.image import REGISTRY, Stage, get_model, register_model
from clinsight.store.tables import AuditRow, Prediction, Study, new_id
from tests.support.dicom import dicom_for
from tests.support.service import Service

BOY = {"mrn": "MRN-BOY", "name": "Tom Thumb", "birth_date": "2019-05-01", "sex": "male"}
RG1 = Path("dicom") / "pydicom_data" / "RG1_J2KI.dcm"


def _boy(service: Service, headers: dict[str, str]) -> str:
    made = service.client.post("/api/v1/patients", json=BOY, headers=headers)
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def _png() -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((32, 32), 128, dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def test_a_dicom_of_another_patient_is_refused_until_confirmed(
    service: Service, data_dir: Path
) -> None:
    client, alice = service.client, service.login("alice")
    patient_id = _boy(service, alice)
    dicom = (data_dir / RG1).read_bytes()
    for path in ("studies", "predictions"):
        refused = client.post(f"/api/v1/patients/{patient_id}/{path}", headers=alice,
                              files={"file": ("x.dcm", dicom)})  # fmt: skip
        assert refused.status_code == 409
        assert refused.headers["content-type"] == "application/problem+json"
        problem = refused.json()
        assert problem["title"] == "Patient mismatch"
        assert [e["location"] for e in problem["errors"]] == [
            "dicom.name", "dicom.patient_id", "dicom.birth_date", "dicom.sex",
        ]  # fmt: skip
        assert problem["errors"][2]["message"] == (
            "Birth date: the DICOM file says 1940-03-05, the chart 2019-05-01."
        )
        assert problem["detail"] == (
            "the DICOM file does not match this patient's chart (name, patient id, birth date, "
            "sex; see errors). Check that the image belongs to this patient; to file it here "
            "anyway, confirm the mismatch (API: confirm_patient_mismatch=true)."
        )
    with client.app.state.clinsight.sessions() as session:  # type: ignore[attr-defined]
        assert session.execute(select(func.count()).select_from(Study)).scalar_one() == 0
    made = client.post(f"/api/v1/patients/{patient_id}/studies", headers=alice,
                       params={"confirm_patient_mismatch": "true"},
                       files={"file": ("x.dcm", dicom)})  # fmt: skip
    assert made.status_code == 201, made.text
    assert made.json()["patient_mismatch"] == ["name", "patient_id", "birth_date", "sex"]
    listed = client.get(f"/api/v1/patients/{patient_id}/studies", headers=alice).json()
    assert listed[0]["patient_mismatch"] == ["name", "patient_id", "birth_date", "sex"]
    with client.app.state.clinsight.sessions() as session:  # type: ignore[attr-defined]
        entry = session.execute(select(AuditRow).where(
            AuditRow.action == "study.patient_mismatch_confirmed")).scalar_one()  # fmt: skip
        assert (entry.resource_id, entry.actor_id) == (made.json()["id"], service.users["alice"])
        assert entry.details == {"fields": "name,patient_id,birth_date,sex"}  # no PHI
    same = dicom_for(data_dir / RG1, **BOY)
    matching = client.post(f"/api/v1/patients/{patient_id}/predictions", headers=alice,
                           files={"file": ("x.dcm", same)})  # fmt: skip
    assert matching.status_code == 201, matching.text


def _with_population(service: Service) -> None:
    """breastmnist v2: v1's network, for children aged 1-5, in production."""
    registry = service.settings.resolved_registry_dir
    current = get_model(registry, "breastmnist", 1)
    made = register_model(
        registry, name="breastmnist", network=load_torch_model(current),
        network_config=current.network_config, preprocess=current.preprocess,
        labels=current.labels, task=current.task, positive_index=current.positive_index,
        temperature=current.temperature, metrics=current.metrics, training=current.training,
        intended_population=IntendedPopulation(1, 5, "children aged 1 to 5 years", "a test"),
    )  # fmt: skip
    REGISTRY.promote(registry, "breastmnist", made.version, Stage.PRODUCTION)


def test_a_patient_outside_the_intended_population_gets_a_warning(
    service: Service, data_dir: Path
) -> None:
    client, alice = service.client, service.login("alice")
    _with_population(service)
    patient_id = _boy(service, alice)
    url = f"/api/v1/patients/{patient_id}/predictions"
    today = datetime.now(UTC).date()
    age = age_in_years(date(2019, 5, 1), today)
    png = client.post(url, headers=alice, files={"file": ("x.png", _png())}).json()
    assert png["model_version"] == "2"
    assert png["warnings"] == [
        f"The patient was {age} years old at the study date ({today.isoformat()}), outside "
        "the intended population of breastmnist v2: children aged 1 to 5 years (1–5 years). "
        "The finding is unreliable for this patient."
    ]
    stored = client.get(f"/api/v1/studies/{png['study_id']}/predictions", headers=alice).json()
    assert stored[0]["warnings"] == png["warnings"]  # on the prediction row
    at_three = dicom_for(data_dir / RG1, **BOY, study_date="2022-06-01")
    young = client.post(url, headers=alice, files={"file": ("x.dcm", at_three)}).json()
    assert not any("intended population" in w for w in young["warnings"])
    card = client.get("/api/v1/models/image/breastmnist/2", headers=service.login("admin"))
    assert "Intended population: children aged 1 to 5 years" in card.json()["card_markdown"]


def test_monitoring_per_version_with_drift_in_metrics_and_a_refused_recalibration(
    service: Service, data_dir: Path
) -> None:
    client, alice, admin = service.client, service.login("alice"), service.login("admin")
    patient_id = _boy(service, alice)
    made = client.post(f"/api/v1/patients/{patient_id}/predictions", headers=alice,
                       files={"file": ("x.png", _png())}).json()  # fmt: skip
    agreed = client.post(f"/api/v1/predictions/{made['id']}/feedback", headers=alice,
                         json={"verdict": "agree"})  # fmt: skip
    assert agreed.status_code == 201
    state = client.app.state.clinsight  # type: ignore[attr-defined]
    with state.sessions() as session:  # 24 more bright inputs this week: a shifted input
        row = session.get(Prediction, made["id"])
        assert row is not None
        assert row.input_mean_intensity == pytest.approx(128 / 255)
        copy = {c.name: getattr(row, c.name) for c in Prediction.__table__.columns}
        session.execute(insert(Prediction), [
            {**copy, "id": new_id(), "input_mean_intensity": 0.99} for _ in range(24)
        ])  # fmt: skip
        session.commit()
    url = "/api/v1/monitoring/image/breastmnist/1"
    assert client.get(url, headers=alice).status_code == 403
    report = client.get(url, headers=admin)
    assert report.status_code == 200, report.text
    found = report.json()
    assert found["baseline"]["split"] == "validation"
    assert found["baseline"]["n"] == 78  # BreastMNIST's validation split
    assert (found["agreement_rate"], found["verdicts"]) == (1.0, {"agree": 1})
    week = found["weeks"][0]
    assert (week["predictions"], week["refused"]) == (25, 0)
    assert week["psi"]["mean_intensity"] > 0.2
    assert found["drift_alert"] is True
    metrics = client.get("/metrics").text
    assert 'clinsight_model_drift_alert{model="breastmnist",version="1"} 1.0' in metrics
    assert (
        'clinsight_model_drift_psi{feature="mean_intensity",model="breastmnist",version="1"}'
        in (metrics)
    )
    refused = client.post(f"{url}/recalibration", headers=admin)
    assert refused.status_code == 422
    assert refused.json()["detail"].startswith(
        "too few confirmed labels to recalibrate breastmnist v1: 1 (0 malignant, 1 normal, "
        "benign); it needs at least 100"
    )
    assert client.post(f"{url}/recalibration", headers=alice).status_code == 403
    assert [m["version"] for m in client.get("/api/v1/models/image", headers=admin).json()] == [1]
