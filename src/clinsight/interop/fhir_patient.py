"""FHIR R4B out: a patient's whole record as one `collection` Bundle, validated.

The Bundle holds the `Patient`, an `Observation` per image finding (`fhir_images`), a
`DocumentReference` per note (`fhir_notes`) and a `RiskAssessment` per stored risk or
survival assessment (the shell of `fhir_out`, from the stored summary).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.patient import Patient
from pydantic import ValidationError

from clinsight.errors import DataError
from clinsight.interop.fhir_images import image_observation
from clinsight.interop.fhir_notes import document_reference
from clinsight.interop.fhir_out import assessment_shell, validated_assessment
from clinsight.store.assessments import AssessmentRecord
from clinsight.store.notes import NoteRecord
from clinsight.store.repositories import PatientRecord
from clinsight.store.studies import PredictionRecord

__all__ = ["MRN_SYSTEM", "patient_bundle", "patient_resource", "stored_assessment"]

MRN_SYSTEM = "urn:clinsight:mrn"
_GENDER = {"female": "female", "male": "male", "other": "other", "unknown": "unknown"}


def patient_resource(patient: PatientRecord) -> Patient:
    """The `Patient`: MRN as identifier, name as text, birth date and gender.

    Raises:
        DataError: the resource does not validate.
    """
    try:
        return Patient.model_validate({
            "resourceType": "Patient",
            "id": patient.id,
            "identifier": [{"system": MRN_SYSTEM, "value": patient.mrn}],
            "name": [{"text": patient.name}],
            "birthDate": patient.birth_date.isoformat(),
            "gender": _GENDER.get(patient.sex, "unknown"),
        })  # fmt: skip
    except ValidationError as exc:
        raise DataError(f"the Patient does not validate: {exc}") from exc


def stored_assessment(record: AssessmentRecord, subject: str) -> dict[str, Any]:
    """A stored risk or survival assessment as a `RiskAssessment` (JSON), validated.

    Raises:
        DataError: the resource does not validate.
    """
    summary = record.summary
    resource = assessment_shell(
        record.model_name, int(record.model_version), str(summary.get("artifact_sha256", "")),
        subject, record.created_at, kind="survival" if record.kind == "survival" else None,
    )  # fmt: skip
    resource["id"] = record.id
    if record.kind == "survival":
        resource["prediction"] = [
            {"outcome": {"text": str(summary.get("event", "event"))},
             "probabilityDecimal": risk["risk"],
             "whenRange": {"high": {"value": risk["years"], "unit": "years",
                                    "system": "http://unitsofmeasure.org", "code": "a"}}}
            for risk in summary.get("risks", [])
        ]  # fmt: skip
    else:
        resource["prediction"] = [{
            "outcome": {"text": str(summary.get("outcome", "outcome"))},
            "probabilityDecimal": summary["probability"],
        }]  # fmt: skip
    return validated_assessment(resource).model_dump(mode="json", exclude_none=True)


def patient_bundle(
    patient: PatientRecord,
    predictions: Sequence[PredictionRecord],
    notes: Sequence[NoteRecord],
    assessments: Sequence[AssessmentRecord],
    *,
    timestamp: datetime | None = None,
) -> dict[str, Any]:
    """The patient's record as a validated `collection` Bundle (JSON).

    Raises:
        DataError: a resource does not validate.
    """
    subject = f"Patient/{patient.id}"
    resources: list[dict[str, Any]] = [patient_resource(patient).model_dump(mode="json")]
    resources += [image_observation(p, subject).model_dump(mode="json") for p in predictions]
    resources += [
        document_reference(n.text, note_id=n.id, patient_id=patient.id, created=n.created_at,
                           author_id=n.author_id).model_dump(mode="json")
        for n in notes
    ]  # fmt: skip
    resources += [stored_assessment(a, subject) for a in assessments]
    try:
        bundle = Bundle.model_validate({
            "resourceType": "Bundle",
            "id": str(uuid.uuid4()),
            "type": "collection",
            "timestamp": (timestamp or datetime.now(UTC)).isoformat(timespec="seconds"),
            "entry": [
                {"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources
            ],
        })  # fmt: skip
    except ValidationError as exc:
        raise DataError(f"the patient Bundle does not validate: {exc}") from exc
    data: dict[str, Any] = bundle.model_dump(mode="json", exclude_none=True)
    return data
