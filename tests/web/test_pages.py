"""The server-rendered UI: login with CSRF, patients, upload → result, feedback, audit."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.service import PASSWORD, Service
from tests.support.web import form_csrf, web_login


def test_login_needs_the_form_token_and_pages_need_a_session(service: Service) -> None:
    client = service.client
    assert client.get("/patients", follow_redirects=False).headers["location"] == "/login"
    client.get("/login")
    forged = client.post("/login", data={"username": "alice", "password": PASSWORD, "csrf": "x"})
    assert forged.status_code == 401
    assert "the form expired" in forged.text


def test_clinician_flow_upload_to_result_and_feedback(service: Service, data_dir: Path) -> None:
    client = service.client
    web_login(service, "alice")
    page = client.get("/patients")
    csrf = form_csrf(page.text)
    form = {"mrn": "M1", "name": "Ada Lovelace", "birth_date": "1980-12-10", "sex": "female"}
    for wrong in ("bad", "bäd"):  # a non-ASCII token is just as wrong, not a server error
        assert client.post("/patients", data={**form, "csrf": wrong}).status_code == 401
    made = client.post("/patients", data={**form, "csrf": csrf})
    assert made.status_code == 200
    assert "Ada Lovelace" in made.text
    assert "No studies yet." in made.text
    patient_url = str(made.url)
    dicom = (data_dir / "dicom" / "pydicom_data" / "RG1_J2KI.dcm").read_bytes()
    result = client.post(f"{patient_url}/studies", data={"csrf": csrf},
                         files={"file": ("x.dcm", dicom)})  # fmt: skip
    assert result.status_code == 200
    assert 'id="overlay" src="data:image/png;base64,' in result.text
    assert "breastmnist v1" in result.text
    saved = client.post(f"{result.url}/feedback", data={"verdict": "agree", "csrf": csrf})
    assert "Feedback recorded: agree." in saved.text
    timeline = client.get(patient_url)
    assert "CR study" in timeline.text
    assert client.get("/audit").status_code == 403
    client.post("/logout", data={"csrf": csrf})
    assert client.get("/patients", follow_redirects=False).status_code == 303


def test_auditor_sees_the_verified_chain(service: Service) -> None:
    web_login(service, "auditor")
    page = service.client.get("/audit")
    assert page.status_code == 200
    assert re.search(r"Hash chain intact: \d+ entries verified\.", page.text)
    assert "auth.login" in page.text


def test_models_page_renders_each_card_as_html(service: Service) -> None:
    web_login(service, "alice")
    page = service.client.get("/models")
    assert page.status_code == 200
    assert "<h1>Model card: breastmnist v1</h1>" in page.text
    assert "<table>" in page.text
    assert "| Field | Value |" not in page.text
