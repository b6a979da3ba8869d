"""The clinician's workspace in the web UI and the API: the patient record (one timeline of a
study, a note and a risk result, the shared header), the worklist, the signed report."""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

import pytest
from fhir.resources.R4B.bundle import Bundle
from PIL import Image
from sqlalchemy import select

from clinsight.config import Settings
from clinsight.store.tables import AuditRow, SignedReport
from tests.support.risk_models import copy_registry, train_pima_synthea
from tests.support.service import Service
from tests.support.web import form_csrf, web_login, web_patient

NOTE = "Ada has asthma. No fever."


@pytest.fixture(scope="module")
def risk_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("workspace-risk")
    train_pima_synthea(root)
    return root


@pytest.fixture
def settings(settings: Settings, risk_registry: Path) -> Settings:
    """The web settings plus the Pima risk model in production."""
    copy_registry(risk_registry / "_risk", settings.resolved_registry_dir / "_risk")
    return settings


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (64, 48), 128).save(buffer, format="PNG")
    return buffer.getvalue()


def _header(html: str) -> str:
    found = re.search(r'<p class="meta" id="patient-facts">(.*?)</p>', html, re.S)
    assert found is not None, "the page has no patient header"
    return re.sub(r"<[^>]+>", "", found.group(1))


def _record(service: Service) -> tuple[str, str, str, str]:
    """Alice's patient with a study (its finding), a note and a risk assessment."""
    client = service.client
    web_login(service, "alice")
    path, csrf = web_patient(service)
    result = client.post(f"{path}/studies", data={"csrf": csrf},
                         files={"file": ("x.png", _png(), "image/png")})  # fmt: skip
    assert result.status_code == 200, result.text
    note = client.post(f"{path}/notes", data={"csrf": csrf, "text": NOTE})
    assert note.status_code == 200
    risk = client.post(f"{path}/risk", data={"csrf": csrf, "f_Glucose": "150", "f_Age": "45"})
    assert risk.status_code == 200, risk.text
    return path, csrf, str(result.url.path), note.text


def test_the_patient_record_shows_study_note_and_risk_under_one_header(service: Service) -> None:
    path, _, result_path, note_page = _record(service)
    client = service.client
    page = client.get(path).text
    assert '<h1 id="patient-name">Ada Lovelace</h1>' in page
    facts = _header(page)
    assert re.fullmatch(r"MRN M1 · \d+ years \(born 1980-12-10\) · female · care team: alice",
                        facts)  # fmt: skip
    kinds = re.findall(r'<li class="entry-(\w+)">', page)
    assert kinds == ["risk", "note", "study"]  # newest first
    timeline = page.split('id="timeline"')[1]
    assert re.search(r">Risk of diabetes: \d+\.\d% \((info|warning|critical)\)</a>", timeline)
    assert ">Note by alice</a>" in timeline
    assert "asthma (present, ICD-10-CM J45" in timeline
    assert ">PNG study</a>" in timeline
    assert '<span class="feedback unreviewed">not reviewed</span>' in timeline
    for other in (result_path, note_page, f"{path}/risk"):
        shown = other if other.startswith("<") else client.get(other).text
        assert _header(shown) == facts
        assert 'class="patient-name" id="patient-name">Ada Lovelace</p>' in shown
    assert 'By <span id="note-author">alice</span>' in note_page
    result = client.get(result_path).text
    assert 'id="result-patient">Ada Lovelace (MRN M1)</a>' in result
    exported = client.get(f"{path}/fhir")
    assert exported.headers["content-type"] == "application/fhir+json"
    bundle = exported.json()
    Bundle.model_validate(bundle)
    kinds = sorted(e["resource"]["resourceType"] for e in bundle["entry"])
    assert kinds == ["DocumentReference", "Observation", "Patient", "RiskAssessment"]


def test_worklist_review_and_signed_report(service: Service) -> None:
    path, csrf, result_path, _ = _record(service)
    client = service.client
    prediction_id = result_path.rsplit("/", 1)[1]
    worklist = client.get("/worklist").text
    assert 'id="worklist-count">Showing 1–1 of 1 finding.' in worklist
    assert f'href="/predictions/{prediction_id}"' in worklist
    assert "Ada Lovelace" in worklist
    refused = client.get("/worklist?refused=only").text
    assert "No findings match." in refused

    early = client.post(f"{result_path}/report", data={"csrf": csrf})
    assert early.status_code == 422
    assert "review the finding first" in early.text
    client.post(f"{result_path}/feedback", data={"csrf": csrf, "verdict": "agree"})
    assert "No findings match." in client.get("/worklist").text
    assert "Showing 1–1 of 1 finding." in client.get("/worklist?status=reviewed").text

    report = client.post(f"{result_path}/report", data={"csrf": csrf})
    assert report.status_code == 200
    assert report.headers["content-type"] == "application/pdf"
    assert report.content.startswith(b"%PDF-")
    assert b"(Ada Lovelace" in report.content
    sha = hashlib.sha256(report.content).hexdigest()
    assert report.headers["x-report-sha256"] == sha
    state = client.app.state.clinsight  # type: ignore[attr-defined]
    with state.sessions() as session:
        signed = session.execute(select(SignedReport)).scalars().all()
        audited = session.execute(
            select(AuditRow).where(AuditRow.action == "report.sign")
        ).scalars().all()  # fmt: skip
    assert [(s.prediction_id, s.sha256, s.verdict) for s in signed] == [
        (prediction_id, sha, "agree")
    ]
    assert [a.details["sha256"] for a in audited] == [sha]

    alice, bob = service.login("alice"), service.login("bob")
    fhir = client.get(f"/api/v1/predictions/{prediction_id}/diagnostic-report", headers=alice)
    assert fhir.status_code == 200
    assert fhir.json()["status"] == "final"
    assert fhir.json()["identifier"][0]["value"] == sha
    listed = client.get("/api/v1/worklist", params={"status": "all"}, headers=alice)
    assert listed.headers["x-total-count"] == "1"
    assert listed.json()[0]["reviewed"] is True
    assert client.get("/api/v1/worklist", params={"status": "all"}, headers=bob).json() == []
    pdf = client.post(f"/api/v1/predictions/{prediction_id}/report.pdf", headers=bob)
    assert pdf.status_code == 403
    assert form_csrf(client.get(path).text)
