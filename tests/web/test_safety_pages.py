"""The web side of safe image answers: the confirmation step of a DICOM naming another
patient, and the monitoring page of a model version."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy import func, insert, select

from clinsight.store.tables import Prediction, Study, new_id
from tests.support.service import Service
from tests.support.web import form_csrf, web_login

BOY = {"mrn": "W-BOY", "name": "Tom Thumb", "birth_date": "2019-05-01", "sex": "male"}


def _studies(service: Service) -> int:
    with service.client.app.state.clinsight.sessions() as session:  # type: ignore[attr-defined]
        return int(session.execute(select(func.count()).select_from(Study)).scalar_one())


def test_a_mismatching_dicom_asks_for_confirmation_and_keeps_the_upload(
    service: Service, data_dir: Path
) -> None:
    client = service.client
    web_login(service, "alice")
    csrf = form_csrf(client.get("/patients").text)
    patient_url = str(client.post("/patients", data={**BOY, "csrf": csrf}).url)
    dicom = (data_dir / "dicom" / "pydicom_data" / "RG1_J2KI.dcm").read_bytes()

    def upload() -> tuple[str, str]:
        asked = client.post(f"{patient_url}/studies", data={"csrf": csrf},
                            files={"file": ("x.dcm", dicom)})  # fmt: skip
        assert asked.status_code == 409
        action = re.search(r'<form method="post" action="([^"]+/held/[^"]+)"', asked.text)
        assert action is not None
        return asked.text, action.group(1)

    page, action = upload()
    items = re.findall(r"<li>(.*?)</li>", page.split('id="mismatches"')[1].split("</ul>")[0])
    assert items == [
        "Name: the DICOM file says “CompressedSamples RG1”, the chart “Tom Thumb”.",
        "Patient ID: the DICOM file says “9RG1”, the chart MRN “W-BOY”.",
        "Birth date: the DICOM file says 1940-03-05, the chart 2019-05-01.",
        "Sex: the DICOM file says female, the chart male.",
    ]
    assert 'id="confirm-mismatch"' in page
    assert 'id="cancel-mismatch"' in page
    assert _studies(service) == 0
    cancelled = client.post(action, data={"csrf": csrf, "action": "cancel"})
    assert cancelled.url.path == patient_url.removeprefix("https://testserver")
    assert _studies(service) == 0
    assert client.post(action, data={"csrf": csrf, "action": "confirm"}).status_code == 404
    _, action = upload()
    web_login(service, "bob")  # another clinician cannot use alice's held upload
    bob_csrf = form_csrf(client.get("/patients").text)
    assert client.post(action, data={"csrf": bob_csrf, "action": "confirm"}).status_code == 403
    web_login(service, "alice")
    csrf = form_csrf(client.get("/patients").text)
    result = client.post(action, data={"csrf": csrf, "action": "confirm"})
    assert result.status_code == 200
    assert 'id="overlay"' in result.text
    assert (
        '<p class="warning" role="alert" id="patient-mismatch">The DICOM header differs from the '
        "chart (name, patient id, birth date, sex); the uploader confirmed the image belongs to "
        "this patient.</p>"
    ) in result.text
    assert _studies(service) == 1
    assert "DICOM header differs from the chart" in client.get(patient_url).text
    held = service.settings.resolved_files_dir / "held"
    assert list(held.glob("*.enc")) == []


def _drifted_predictions(service: Service) -> None:
    """25 predictions of breastmnist v1 this week, every input far brighter than validation."""
    alice = service.login("alice")
    patient = {"mrn": "W-DRIFT", "name": "Ada Lovelace", "birth_date": "1980-12-10",
               "sex": "female"}  # fmt: skip
    made = service.client.post("/api/v1/patients", json=patient, headers=alice).json()
    image = io.BytesIO()
    Image.fromarray(np.full((32, 32), 250, dtype=np.uint8)).save(image, format="PNG")
    first = service.client.post(f"/api/v1/patients/{made['id']}/predictions", headers=alice,
                                files={"file": ("x.png", image.getvalue())}).json()  # fmt: skip
    with service.client.app.state.clinsight.sessions() as session:  # type: ignore[attr-defined]
        row = session.get(Prediction, first["id"])
        copy = {c.name: getattr(row, c.name) for c in Prediction.__table__.columns}
        session.execute(insert(Prediction), [{**copy, "id": new_id()} for _ in range(24)])
        session.commit()


def test_the_monitoring_page_shows_agreement_and_refuses_a_recalibration_in_words(
    service: Service,
) -> None:
    client = service.client
    web_login(service, "admin")
    models = client.get("/models").text
    link = "/models/image/breastmnist/1/monitoring"
    assert f'href="{link}"' in models
    page = client.get(link)
    assert page.status_code == 200
    assert '<dd id="agreement-rate">—</dd>' in page.text
    assert "Validation baseline: 78 cases" in page.text
    assert "No predictions in the last 12 weeks." in page.text
    assert 'id="drift-banner"' not in page.text
    refused = client.post("/models/image/breastmnist/1/recalibration",
                          data={"csrf": form_csrf(page.text)})  # fmt: skip
    assert refused.status_code == 422
    assert "too few confirmed labels to recalibrate breastmnist v1: 0" in refused.text
    _drifted_predictions(service)
    web_login(service, "auditor")
    seen = client.get(link).text
    assert 'id="agreement-rate"' in seen
    assert 'id="propose-recalibration"' not in seen
    banner = re.search(r'<p class="warning" role="alert" id="drift-banner">Drift: in (\S+) the '
                       r"population stability index against the validation baseline exceeds "
                       r"0\.2 \(([^)]*)\)", seen)  # fmt: skip
    assert banner is not None
    assert "mean intensity " in banner.group(2)  # 25 identical images: both features drift
    assert '<tr class="drift"><td>' + banner.group(1) in seen
    web_login(service, "alice")
    assert client.get(link).status_code == 403
