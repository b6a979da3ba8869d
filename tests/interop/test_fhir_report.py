"""A finding's report: the FHIR DiagnosticReport, the patient's Bundle and the PDF."""

from __future__ import annotations

import io
import re
import uuid
from datetime import UTC, date, datetime

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from PIL import Image

from clinsight.interop.fhir_patient import patient_bundle
from clinsight.interop.fhir_report import REPORT_SHA256_SYSTEM, diagnostic_report
from clinsight.interop.report_pdf import ReportContent, render_report_pdf, thresholds_text
from clinsight.store.assessments import AssessmentRecord
from clinsight.store.notes import NoteRecord
from clinsight.store.reports import SignedReportRecord
from clinsight.store.repositories import PatientRecord
from clinsight.store.studies import FeedbackRecord, PredictionRecord
from clinsight.store.tables import Verdict

WHEN = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
PATIENT = PatientRecord(str(uuid.uuid4()), "MRN-7", "Ada Lovelace", date(1980, 12, 10),
                        "female", WHEN)  # fmt: skip
BAND = {"low": 0.3, "high": 0.7, "split": "validation", "sensitivity": 0.96,
        "specificity": 0.97, "sensitivity_target": 0.95, "specificity_target": 0.95,
        "n_positive": 25, "n_negative": 53}  # fmt: skip


def _prediction(**changes: object) -> PredictionRecord:
    fields: dict[str, object] = {
        "id": str(uuid.uuid4()), "study_id": str(uuid.uuid4()), "user_id": None,
        "created_at": WHEN, "model_name": "breastmnist", "model_version": "1",
        "artifact_sha256": "a" * 64, "input_sha256": "b" * 64, "preprocessing": {},
        "label": "malignant", "probability": 0.82, "calibrated_confidence": 0.82,
        "latency_ms": 12.0, "decision": "malignant", "decision_thresholds": BAND,
        "intended_use": "ok",
    }  # fmt: skip
    return PredictionRecord(**{**fields, **changes})  # type: ignore[arg-type]


def _review(prediction: PredictionRecord, verdict: Verdict = Verdict.AGREE) -> FeedbackRecord:
    return FeedbackRecord(str(uuid.uuid4()), prediction.id, "u-alice", verdict, None, None, WHEN)


def _png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (28, 28), (value, value, value)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_reviewed_finding_is_a_final_diagnostic_report_with_its_signatures() -> None:
    finding = _prediction()
    signed = SignedReportRecord("r1", finding.id, "u-alice", "alice", "agree", "c" * 64, WHEN)
    data = diagnostic_report(finding, PATIENT.id, [(_review(finding), "alice")], [signed],
                             issued=WHEN)  # fmt: skip
    report = DiagnosticReport.model_validate(data)
    assert report.status == "final"
    assert report.subject is not None
    assert report.subject.reference == f"Patient/{PATIENT.id}"
    assert [r.reference for r in report.result or []] == [f"#{finding.id}"]
    assert data["contained"][0]["resourceType"] == "Observation"
    assert data["contained"][0]["valueCodeableConcept"] == {"text": "malignant"}
    assert data["conclusion"] == "Clinsight breastmnist v1: malignant. Reviewed by alice: agree."
    assert data["resultsInterpreter"] == [{"display": "alice"}]
    assert data["identifier"] == [{"system": REPORT_SHA256_SYSTEM, "value": "c" * 64}]


def test_an_unreviewed_or_refused_finding_stays_preliminary() -> None:
    refused = _prediction(intended_use="refused", intended_use_reasons=("a chest radiograph",))
    data = diagnostic_report(refused, PATIENT.id, [], [])
    assert data["status"] == "preliminary"
    assert data["conclusion"] == (
        "Clinsight breastmnist v1: no finding (outside intended use). Not yet reviewed by a "
        "clinician."
    )
    assert "valueCodeableConcept" not in data["contained"][0]
    assert "identifier" not in data
    assert "resultsInterpreter" not in data


def test_the_patient_bundle_holds_every_kind_of_record() -> None:
    note = NoteRecord(str(uuid.uuid4()), PATIENT.id, "u-alice", "Asthma. No fever.", WHEN)
    risk = AssessmentRecord(str(uuid.uuid4()), PATIENT.id, "risk", "pima-synthea", "1", "d" * 64,
                            {"probability": 0.42, "level": "warning", "outcome": "diabetes",
                             "artifact_sha256": "e" * 64}, "u-alice", WHEN)  # fmt: skip
    survival = AssessmentRecord(str(uuid.uuid4()), PATIENT.id, "survival", "gbsg", "2",
                                "f" * 64, {"event": "recurrence", "artifact_sha256": "1" * 64,
                                           "risks": [{"years": 1.0, "risk": 0.1},
                                                     {"years": 5.0, "risk": 0.4}]},
                                "u-alice", WHEN)  # fmt: skip
    data = patient_bundle(PATIENT, [_prediction()], [note], [risk, survival], timestamp=WHEN)
    Bundle.model_validate(data)
    kinds = [entry["resource"]["resourceType"] for entry in data["entry"]]
    assert kinds == ["Patient", "Observation", "DocumentReference", "RiskAssessment",
                     "RiskAssessment"]  # fmt: skip
    patient = data["entry"][0]["resource"]
    assert patient["identifier"] == [{"system": "urn:clinsight:mrn", "value": "MRN-7"}]
    assert (patient["birthDate"], patient["gender"]) == ("1980-12-10", "female")
    assert data["entry"][3]["resource"]["prediction"][0]["probabilityDecimal"] == 0.42
    horizons = data["entry"][4]["resource"]["prediction"]
    assert [(h["probabilityDecimal"], h["whenRange"]["high"]["value"]) for h in horizons] == [
        (0.1, 1.0), (0.4, 5.0),
    ]  # fmt: skip


def _pdf_text(pdf: bytes) -> str:
    """The strings drawn on the PDF's pages (uncompressed page streams)."""
    return " ".join(m.decode("latin-1") for m in re.findall(rb"\(((?:[^()\\]|\\.)*)\) Tj", pdf))


def test_the_pdf_names_patient_finding_thresholds_provenance_and_reviewer() -> None:
    finding = _prediction()
    content = ReportContent(
        patient=PATIENT, age=45, prediction=finding, image_png=_png(90), heatmap_png=_png(200),
        card_url="https://clinsight.example/models#breastmnist-1", reviewer="alice",
        review=_review(finding), signed_at=WHEN,
    )  # fmt: skip
    pdf = render_report_pdf(content)
    assert pdf.startswith(b"%PDF-")
    text = _pdf_text(pdf)
    for expected in ("Ada Lovelace", "MRN-7", "82.0% for malignant", "breastmnist v1",
                     "a" * 64, "b" * 64, "https://clinsight.example/models#breastmnist-1",
                     "Reviewed by alice", "Signed electronically by alice"):  # fmt: skip
        assert expected in text, expected
    assert thresholds_text(finding) == (
        "positive at >= 70.0%, negative below 30.0%, indeterminate in between"
    )
