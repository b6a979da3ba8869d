"""FHIR R4B out: a finding's report as a `DiagnosticReport`, validated with fhir.resources.

The image finding is a contained `Observation` (`fhir_images`) referenced as the result;
the status is ``final`` once a clinician has reviewed the finding (else ``preliminary``),
the reviewers are the results interpreters, the conclusion states the finding and their
verdicts, and each signed PDF of the report is an identifier (its sha256).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from pydantic import ValidationError

from clinsight.errors import DataError
from clinsight.interop.fhir_images import image_observation
from clinsight.store.reports import SignedReportRecord
from clinsight.store.studies import FeedbackRecord, PredictionRecord

__all__ = ["REPORT_SHA256_SYSTEM", "diagnostic_report"]

REPORT_SHA256_SYSTEM = "urn:clinsight:signed-report-sha256"
_CATEGORY = "http://terminology.hl7.org/CodeSystem/v2-0074"


def diagnostic_report(
    record: PredictionRecord,
    patient_id: str,
    reviews: Sequence[tuple[FeedbackRecord, str]],
    signatures: Sequence[SignedReportRecord],
    *,
    issued: datetime | None = None,
) -> dict[str, Any]:
    """The `DiagnosticReport` of a finding (JSON), `reviews` being each clinician's current
    verdict with their username.

    Raises:
        DataError: the resource does not validate.
    """
    subject = f"Patient/{patient_id}"
    observation = image_observation(record, subject).model_dump(mode="json", exclude_none=True)
    finding = "no finding (outside intended use)" if record.refused else record.predicted_label
    verdicts = "; ".join(
        f"{name}: {review.verdict}"
        + (f" (corrected label {review.override_label})" if review.override_label else "")
        for review, name in reviews
    )
    conclusion = f"Clinsight {record.model_name} v{record.model_version}: {finding}."
    conclusion += f" Reviewed by {verdicts}." if verdicts else " Not yet reviewed by a clinician."
    resource: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "id": record.id,
        "status": "final" if reviews else "preliminary",
        "category": [{"coding": [{"system": _CATEGORY, "code": "RAD", "display": "Radiology"}]}],
        "code": {"text": f"Clinsight image model {record.model_name} finding report"},
        "subject": {"reference": subject},
        "effectiveDateTime": record.created_at.isoformat(timespec="seconds"),
        "issued": (issued or datetime.now(UTC)).isoformat(timespec="seconds"),
        "contained": [observation],
        "result": [{"reference": f"#{observation['id']}"}],
        "conclusion": conclusion,
    }
    if reviews:
        resource["resultsInterpreter"] = [{"display": name} for _, name in reviews]
    if signatures:
        resource["identifier"] = [
            {"system": REPORT_SHA256_SYSTEM, "value": s.sha256} for s in signatures
        ]
    try:
        report = DiagnosticReport.model_validate(resource)
    except ValidationError as exc:
        raise DataError(f"the DiagnosticReport does not validate: {exc}") from exc
    data: dict[str, Any] = report.model_dump(mode="json", exclude_none=True)
    return data
