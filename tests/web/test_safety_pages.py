"""The web side of safe image answers: the confirmation step of a DICOM naming another
patient, and the monitoring page of a model version."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import func, select

from clinsight.store.tables import Study
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
    assert client.post(action, data={"csrf": bob_csrf, "action": "confirm"}).status_code == 404
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
    web_login(service, "auditor")
    seen = client.get(link).text
    assert 'id="agreement-rate"' in seen
    assert 'id="propose-recalibration"' not in seen
    web_login(service, "alice")
    assert client.get(link).status_code == 403
