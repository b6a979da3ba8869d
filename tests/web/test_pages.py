"""The server-rendered UI: login with CSRF, patients, upload → result, feedback, audit."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.image_models import promote_with_band
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
    # The tiny breast model's gate only warns in these tests: a chest radiograph is flagged.
    assert (
        '<p class="warning intended-use" role="alert">The DICOM header gives modality CR, but '
        "the model is meant for breast ultrasound images with modality US.</p>"
    ) in result.text
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


def test_feedback_is_shown_again_editable_and_checked_against_the_labels(
    service: Service, data_dir: Path
) -> None:
    client = service.client
    web_login(service, "alice")
    csrf = form_csrf(client.get("/patients").text)
    form = {"mrn": "M2", "name": "Ada Lovelace", "birth_date": "1980-12-10", "sex": "female"}
    patient_url = str(client.post("/patients", data={**form, "csrf": csrf}).url)
    dicom = (data_dir / "dicom" / "pydicom_data" / "RG1_J2KI.dcm").read_bytes()
    result = client.post(f"{patient_url}/studies", data={"csrf": csrf},
                         files={"file": ("x.dcm", dicom)})  # fmt: skip
    result_url = str(result.url).split("?")[0]
    assert 'id="current-verdict"' not in result.text
    assert '<option value="malignant">malignant</option>' in result.text
    client.post(f"{result_url}/feedback", data={"verdict": "agree", "csrf": csrf})
    revisited = client.get(result_url)
    assert "Your current verdict: <strong>agreed</strong>" in revisited.text
    assert 'value="agree" id="agree" aria-pressed="true"' in revisited.text
    assert 'id="feedback-history"' not in revisited.text
    banana = {"verdict": "override", "reason": "smooth margins", "override_label": "banana"}
    refused = client.post(f"{result_url}/feedback", data={**banana, "csrf": csrf})
    assert refused.status_code == 422
    assert (
        '<p class="error" role="alert" id="feedback-error">&#39;banana&#39; is not a label of'
        " breastmnist v1; choose one of: &#39;malignant&#39;, &#39;normal, benign&#39;</p>"
    ) in refused.text
    assert 'value="smooth margins"' in refused.text
    assert "Your current verdict: <strong>agreed</strong>" in refused.text  # nothing stored
    override = {"verdict": "override", "reason": "smooth margins", "override_label": "malignant"}
    saved = client.post(f"{result_url}/feedback", data={**override, "csrf": csrf})
    assert saved.status_code == 200
    assert "Feedback recorded: override." in saved.text
    assert "Your current verdict: <strong>overridden → malignant</strong>" in saved.text
    assert "(reason: smooth margins)" in saved.text
    assert '<option value="malignant" selected>malignant</option>' in saved.text
    assert 'value="smooth margins"' in saved.text
    history = re.search(r'<ol id="feedback-history">\s*<li>([^,<]*),', saved.text)
    assert history is not None
    assert history.group(1) == "agreed"
    timeline = client.get(patient_url)
    assert '· <span class="feedback">you: overridden → malignant</span>' in timeline.text


def test_a_result_inside_the_band_reads_indeterminate(service: Service, data_dir: Path) -> None:
    client = service.client
    web_login(service, "alice")
    csrf = form_csrf(client.get("/patients").text)
    form = {"mrn": "M9", "name": "Ada Lovelace", "birth_date": "1980-12-10", "sex": "female"}
    patient_url = str(client.post("/patients", data={**form, "csrf": csrf}).url)
    dicom = (data_dir / "dicom" / "pydicom_data" / "RG1_J2KI.dcm").read_bytes()
    promote_with_band(service.settings.resolved_registry_dir, "breastmnist", 0.0, 1.0)
    result = client.post(f"{patient_url}/studies", data={"csrf": csrf},
                         files={"file": ("x.dcm", dicom)})  # fmt: skip
    assert result.status_code == 200
    assert '<h1 id="headline">Indeterminate</h1>' in result.text
    assert "Finding:" not in result.text
    assert 'id="probability"' not in result.text
    assert re.search(r'id="positive-probability">\d+\.\d%</dd>', result.text)
    assert (
        '<dd id="thresholds">positive at ≥ 100.0%, negative below 0.0%, indeterminate in '
        "between</dd>"
    ) in result.text
    assert (
        "sensitivity 96.0% (target 95%), specificity 97.0% (target 95%), 25 positive and 53 "
        "negative cases"
    ) in result.text
    timeline = client.get(patient_url)
    assert re.search(r">Indeterminate \(P\(positive\) \d+\.\d%\)</a>", timeline.text)
