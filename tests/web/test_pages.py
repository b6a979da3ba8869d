"""The server-rendered UI: login with CSRF, patients, upload → result, feedback, audit."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.dicom import dicom_for
from tests.support.image_models import promote_with_band
from tests.support.service import PASSWORD, Service
from tests.support.web import form_csrf, web_login


def test_login_needs_the_form_token_and_pages_need_a_session(service: Service) -> None:
    client = service.client
    assert client.get("/patients", follow_redirects=False).headers["location"] == (
        "/login?next=%2Fpatients"
    )
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
    dicom = dicom_for(data_dir / "dicom" / "pydicom_data" / "RG1_J2KI.dcm", **form)
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
    card = page.text.split('<details class="model-card" open>', 1)[1].split("</details>", 1)[0]
    assert 'src="plots/' not in card  # every plot inline: nothing the browser cannot fetch
    images = re.findall(r'<img src="([^"]+)"', card)
    assert images
    assert all(src.startswith("data:image/png;base64,") for src in images)
    assert "_" not in " ".join(re.findall(r"<tr>\s*<td>([^<]+)</td>", card))  # human labels
    assert '{"' not in card  # no raw JSON
    limitations = re.findall(r"<li>(.*?)</li>", card.split("Limitations", 1)[1], flags=re.S)
    assert len(limitations) == len(set(limitations))


def test_feedback_is_shown_again_editable_and_checked_against_the_labels(
    service: Service, data_dir: Path
) -> None:
    client = service.client
    web_login(service, "alice")
    csrf = form_csrf(client.get("/patients").text)
    form = {"mrn": "M2", "name": "Ada Lovelace", "birth_date": "1980-12-10", "sex": "female"}
    patient_url = str(client.post("/patients", data={**form, "csrf": csrf}).url)
    dicom = dicom_for(data_dir / "dicom" / "pydicom_data" / "RG1_J2KI.dcm", **form)
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
    dicom = dicom_for(data_dir / "dicom" / "pydicom_data" / "RG1_J2KI.dcm", **form)
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


def test_a_browser_gets_pages_for_errors_and_the_api_keeps_problem_json(service: Service) -> None:
    """An unknown address and a form the server cannot read: a page in words for a browser;
    the same mistakes against the API still answer problem+json."""
    client = service.client
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    lost = client.get("/no-such-page", headers=browser)
    assert lost.status_code == 404
    assert lost.headers["content-type"].startswith("text/html")
    assert "there is no page at this address" in lost.text
    assert "{" not in lost.text.split("<main>", 1)[1]  # no raw JSON on the page
    web_login(service, "alice")
    csrf = form_csrf(client.get("/patients").text)
    incomplete = client.post("/patients", data={"csrf": csrf, "mrn": "M9"}, headers=browser)
    assert incomplete.status_code == 422
    assert incomplete.headers["content-type"].startswith("text/html")
    assert "please fill in or correct: birth date, name" in incomplete.text
    api = client.get("/api/v1/no-such-thing", headers=browser)
    assert api.headers["content-type"] == "application/problem+json"
    assert client.get("/no-such-page").headers["content-type"] == "application/problem+json"


def test_the_patient_list_counts_pages_and_finds_an_mrn_fragment(service: Service) -> None:
    client = service.client
    web_login(service, "alice")
    csrf = form_csrf(client.get("/patients").text)
    for n in range(1, 56):
        form = {"mrn": f"MRN-{1000 + n}", "name": f"Test Patient {n}", "birth_date": "1980-01-01",
                "sex": "male", "csrf": csrf}  # fmt: skip
        assert client.post("/patients", data=form).status_code == 200
    first = client.get("/patients")
    assert "Showing 1–50 of 55 patients." in first.text
    names = re.findall(r">(Test Patient \d+)</a>", first.text)
    assert names[:3] == ["Test Patient 1", "Test Patient 2", "Test Patient 3"]
    assert 'id="next-page" href="/patients?q=&amp;offset=50"' in first.text
    second = client.get("/patients", params={"offset": 50})
    assert "Showing 51–55 of 55 patients." in second.text
    assert 'id="previous-page"' in second.text
    found = client.get("/patients", params={"q": "1001"})
    assert re.findall(r">(Test Patient \d+)</a>", found.text) == ["Test Patient 1"]
    api = client.get("/api/v1/patients", params={"q": "test", "limit": 5},
                     headers=service.login("alice"))  # fmt: skip
    assert api.headers["x-total-count"] == "55"
    future = {"mrn": "F1", "name": "N", "birth_date": "2099-01-01", "sex": "male", "csrf": csrf}
    refused = client.post("/patients", data=future)
    assert refused.status_code == 422
    assert "is in the future" in refused.text


def test_login_keeps_the_username_returns_to_the_deep_link_and_says_logged_out(
    service: Service,
) -> None:
    client = service.client
    asked = client.get("/patients?q=ada", follow_redirects=False).headers["location"]
    form = client.get(asked)
    assert 'name="next" value="/patients?q=ada"' in form.text
    wrong = {"username": "alice", "password": "wrong", "csrf": form_csrf(form.text),
             "next": "/patients?q=ada"}  # fmt: skip
    refused = client.post("/login", data=wrong)
    assert refused.status_code == 401
    assert 'id="username" autocomplete="username" required value="alice"' in refused.text
    right = {**wrong, "password": PASSWORD, "csrf": form_csrf(refused.text)}
    done = client.post("/login", data=right, follow_redirects=False)
    assert done.headers["location"] == "/patients?q=ada"
    away = {**right, "csrf": form_csrf(client.get("/login").text), "next": "https://evil.example"}
    assert client.post("/login", data=away, follow_redirects=False).headers["location"] == (
        "/patients"
    )
    csrf = form_csrf(client.get("/patients").text)
    out = client.post("/logout", data={"csrf": csrf}, follow_redirects=True)
    assert "You are logged out." in out.text


def test_the_audit_page_names_people_filters_exports_and_is_one_entry_per_view(
    service: Service,
) -> None:
    from sqlalchemy import func, select

    from clinsight.store.tables import AuditRow

    client = service.client
    web_login(service, "alice")
    csrf = form_csrf(client.get("/patients").text)
    form = {"mrn": "MRN-A1", "name": "Ada Lovelace", "birth_date": "1980-12-10", "sex": "female"}
    assert client.post("/patients", data={**form, "csrf": csrf}).status_code == 200
    web_login(service, "auditor")
    state = client.app.state.clinsight  # type: ignore[attr-defined]

    def count() -> int:
        with state.sessions() as session:
            return int(session.execute(select(func.count()).select_from(AuditRow)).scalar_one())

    before = count()
    page = client.get("/audit", params={"user": "alice", "action": "patient"})
    assert count() == before + 1  # the view, nothing else
    assert page.status_code == 200
    rows = re.findall(r"<tr class=\"(\w+)\"><td>\d+</td>.*?</tr>", page.text, flags=re.S)
    assert rows
    assert ">alice</a>" in page.text
    assert "Ada Lovelace" not in page.text  # the audit role sees no patient data
    assert re.search(r">patient [0-9a-f]{8}</a>", page.text)
    assert ">auditor</a>" not in page.text  # only alice's entries
    assert "auth.login" not in page.text  # only the patient group
    csv_export = client.get("/audit/export.csv", params={"user": "alice", "action": "patient"})
    assert csv_export.headers["content-type"].startswith("text/csv")
    lines = csv_export.text.strip().splitlines()
    assert lines[0].startswith("seq,time_utc,user,user_id,action")
    assert all(",alice," in line for line in lines[1:])
    fhir = client.get("/audit/export.json", params={"user": "alice"}).json()
    assert fhir["resourceType"] == "Bundle"
    events = [e["resource"] for e in fhir["entry"]]
    assert {e["resourceType"] for e in events} == {"AuditEvent"}
    assert all(e["agent"][0]["who"]["display"] == "alice" for e in events)
    created = next(e for e in events if e["subtype"][1]["code"] == "patient.create")
    assert created["action"] == "C"
    assert created["entity"][0]["role"]["code"] == "1"  # the patient
    wrong = client.get("/audit", params={"user": "nobody"}, headers={"Accept": "text/html"})
    assert wrong.status_code == 422
    assert "no account is called &#39;nobody&#39;" in wrong.text


def test_the_result_has_a_colour_scale_the_plain_image_and_states_a_crop(
    service: Service, tmp_path: Path
) -> None:
    import io

    import numpy as np
    from PIL import Image

    client = service.client
    web_login(service, "alice")
    csrf = form_csrf(client.get("/patients").text)
    form = {"mrn": "M-CROP", "name": "Ada Lovelace", "birth_date": "1980-12-10", "sex": "female"}
    patient_url = str(client.post("/patients", data={**form, "csrf": csrf}).url)
    wide = np.tile(np.linspace(0, 255, 96, dtype=np.uint8), (64, 1))  # 96 wide, 64 high
    png = io.BytesIO()
    Image.fromarray(wide).save(png, format="PNG")
    result = client.post(f"{patient_url}/studies", data={"csrf": csrf},
                         files={"file": ("wide.png", png.getvalue())})  # fmt: skip
    assert result.status_code == 200
    text = result.text
    assert "No finding" not in text  # the tiny model's gate only warns in these tests
    assert 'id="colour-bar"' in text
    plain = text.split('<details id="plain-image">', 1)[1].split("</details>", 1)[0]
    assert '<img src="data:image/png;base64,' in plain
    assert (
        "The uploaded image is 96×64 pixels: the model reads its centred square (64×64)"
    ) in text
