"""A clinical note and the problems found in it, out as FHIR R4B resources.

The note becomes a `DocumentReference` (the text as a base64 plain-text attachment).
Each problem concept becomes one `Condition` per verification status: ``confirmed``
(present or historical), ``refuted`` (negated) or ``unconfirmed`` (possible), coded
to ICD-10-CM where a code fits (else only `code.text`). Every mention is an
`evidence` entry pointing at the DocumentReference, with an extension holding its
character offsets in the note and its assertion (present, historical, negated,
possible). `clinicalStatus` is ``active`` unless the concept is refuted or every
mention is historical (a past problem may or may not be active: left unstated).
Family-history and hypothetical mentions are not the patient's conditions and are
left out. Ids are UUIDs derived from the note id, so the same note always gives
the same Bundle.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import datetime
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.documentreference import DocumentReference

from clinsight.errors import DataError
from clinsight.nlp.pipeline import PROBLEM_LABELS, ClinicalEntity, NoteAnnotation

__all__ = [
    "ICD10CM_SYSTEM",
    "NOTE_SPAN_EXTENSION",
    "condition_resources",
    "document_reference",
    "note_bundle",
    "verification_status",
]

ICD10CM_SYSTEM = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC_SYSTEM = "http://loinc.org"
VERIFICATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CLINICAL_SYSTEM = "http://terminology.hl7.org/CodeSystem/condition-clinical"
STRUCTURE_BASE = "https://clinsight.dev/fhir/StructureDefinition"
NOTE_SPAN_EXTENSION = f"{STRUCTURE_BASE}/note-span"


def _uuid(note_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(note_id)
    except ValueError:
        raise DataError(
            f"note id {note_id!r} is not a UUID; FHIR output needs the stored note's id"
        ) from None


def _reference(kind: str, ident: str) -> dict[str, str]:
    return {"reference": f"{kind}/{ident}"}


def verification_status(entity: ClinicalEntity) -> str:
    """``refuted`` for a negated mention, ``unconfirmed`` for a possible one, else ``confirmed``."""
    if entity.negated:
        return "refuted"
    return "unconfirmed" if entity.uncertain else "confirmed"


def document_reference(
    text: str, *, note_id: str, patient_id: str, created: datetime, author_id: str | None = None
) -> DocumentReference:
    """The note as a current, final `DocumentReference` (LOINC 34109-9 "Note").

    Raises:
        DataError: `note_id` is not a UUID or `created` is naive.
    """
    _uuid(note_id)
    if created.tzinfo is None:
        raise DataError("the note's creation time is naive; pass a timezone-aware datetime")
    content = text.encode("utf-8")
    resource: dict[str, Any] = {
        "id": note_id,
        "status": "current",
        "docStatus": "final",
        "type": {"coding": [{"system": LOINC_SYSTEM, "code": "34109-9", "display": "Note"}]},
        "subject": _reference("Patient", patient_id),
        "date": created.isoformat(),
        "content": [
            {
                "attachment": {
                    "contentType": "text/plain; charset=utf-8",
                    "data": base64.b64encode(content).decode("ascii"),
                    "size": len(content),
                    "hash": base64.b64encode(hashlib.sha1(content).digest()).decode("ascii"),  # noqa: S324 (FHIR's Attachment.hash is SHA-1)
                }
            }
        ],
    }
    if author_id is not None:
        resource["author"] = [_reference("Practitioner", author_id)]
    return DocumentReference.model_validate(resource)


def _span(entity: ClinicalEntity) -> dict[str, Any]:
    return {
        "url": NOTE_SPAN_EXTENSION,
        "extension": [
            {"url": "start", "valueInteger": entity.start},
            {"url": "end", "valueInteger": entity.end},
            {"url": "assertion", "valueCode": entity.assertion},
        ],
    }


def _concept_key(entity: ClinicalEntity) -> str:
    return entity.icd10.code if entity.icd10 is not None else entity.text.lower()


def condition_resources(
    annotation: NoteAnnotation, *, note_id: str, patient_id: str, created: datetime
) -> list[Condition]:
    """One `Condition` per problem concept and verification status, in order of first mention.

    Raises:
        DataError: `note_id` is not a UUID or `created` is naive.
    """
    namespace = _uuid(note_id)
    if created.tzinfo is None:
        raise DataError("the note's creation time is naive; pass a timezone-aware datetime")
    groups: dict[tuple[str, str], list[ClinicalEntity]] = {}
    for entity in annotation.entities:
        if entity.label in PROBLEM_LABELS and not (entity.family or entity.hypothetical):
            groups.setdefault((_concept_key(entity), verification_status(entity)), []).append(
                entity
            )
    conditions = []
    for (key, status), mentions in groups.items():
        first = mentions[0]
        code: dict[str, Any] = {"text": first.text}
        if first.icd10 is not None:
            code["coding"] = [
                {
                    "system": ICD10CM_SYSTEM,
                    "code": first.icd10.code,
                    "display": first.icd10.description,
                }
            ]
        resource: dict[str, Any] = {
            "id": str(uuid.uuid5(namespace, f"condition:{key}:{status}")),
            "verificationStatus": {"coding": [{"system": VERIFICATION_SYSTEM, "code": status}]},
            "code": code,
            "subject": _reference("Patient", patient_id),
            "recordedDate": created.isoformat(),
            "evidence": [
                {"extension": [_span(m)], "detail": [_reference("DocumentReference", note_id)]}
                for m in mentions
            ],
        }
        if status != "refuted" and not all(m.historical for m in mentions):
            resource["clinicalStatus"] = {"coding": [{"system": CLINICAL_SYSTEM, "code": "active"}]}
        conditions.append(Condition.model_validate(resource))
    return conditions


def note_bundle(
    annotation: NoteAnnotation,
    *,
    note_id: str,
    patient_id: str,
    created: datetime,
    author_id: str | None = None,
) -> Bundle:
    """A `collection` Bundle: the note's DocumentReference, then its Conditions.

    Raises:
        DataError: `note_id` is not a UUID or `created` is naive.
    """
    document = document_reference(
        annotation.text,
        note_id=note_id,
        patient_id=patient_id,
        created=created,
        author_id=author_id,
    )
    resources = [
        document,
        *condition_resources(annotation, note_id=note_id, patient_id=patient_id, created=created),
    ]
    return Bundle.model_validate(
        {
            "id": str(uuid.uuid5(_uuid(note_id), "bundle")),
            "type": "collection",
            "timestamp": created.isoformat(),
            "entry": [
                {"fullUrl": f"urn:uuid:{r.id}", "resource": r.model_dump(mode="json")}
                for r in resources
            ],
        }
    )
