"""FHIR R4B output of a note: exact DocumentReference, Conditions and Bundle."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle, BundleEntry
from fhir.resources.R4B.resource import Resource

from clinsight.errors import DataError
from clinsight.interop.fhir_notes import (
    NOTE_SPAN_EXTENSION,
    condition_resources,
    document_reference,
    note_bundle,
    verification_status,
)
from clinsight.nlp.coding import icd10_code
from clinsight.nlp.pipeline import ClinicalEntity, NoteAnnotation, annotate_note

NOTE_ID = "9f1c7f6e-0c55-4c8e-9a77-2b0f1a6f6a10"
CREATED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
TEXT = (
    "History of hypertension. Denies chest pain. Possible pneumonia.\n"
    "FAMILY HISTORY: Mother had diabetes.\nASSESSMENT: Hypertension. Asthma."
)
VER = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
ACTIVE = {
    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                "code": "active"}]
}  # fmt: skip


def _evidence(start: int, end: int, assertion: str) -> dict[str, Any]:
    return {
        "extension": [{
            "url": NOTE_SPAN_EXTENSION,
            "extension": [
                {"url": "start", "valueInteger": start},
                {"url": "end", "valueInteger": end},
                {"url": "assertion", "valueCode": assertion},
            ],
        }],
        "detail": [{"reference": f"DocumentReference/{NOTE_ID}"}],
    }  # fmt: skip


def _condition(
    ident: str, status: str, code: tuple[str, str] | None, text: str, *evidence: dict[str, Any]
) -> dict[str, Any]:
    concept: dict[str, Any] = {"text": text}
    if code is not None:
        concept = {"coding": [{"system": ICD, "code": code[0], "display": code[1]}], **concept}
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "id": ident,
        "verificationStatus": {"coding": [{"system": VER, "code": status}]},
        "code": concept,
        "subject": {"reference": "Patient/p-1"},
        "recordedDate": "2026-01-02T03:04:05Z",
        "evidence": list(evidence),
    }
    return resource


def test_conditions_of_a_small_note_are_exact() -> None:
    annotation = annotate_note(TEXT)
    found = [
        c.model_dump(mode="json", exclude_none=True)
        for c in condition_resources(annotation, note_id=NOTE_ID, patient_id="p-1", created=CREATED)
    ]
    hypertension = _condition(
        "0779a4d9-55c1-5d56-9cc5-b000a8ebc83c", "confirmed",
        ("I10", "Essential (primary) hypertension"), "hypertension",
        _evidence(11, 23, "historical"), _evidence(113, 125, "present"),
    )  # fmt: skip
    chest_pain = _condition(
        "5d6d9ae8-66a4-50c2-8d8a-0a4b1d9385fc", "refuted",
        ("R07.9", "Chest pain, unspecified"), "chest pain", _evidence(32, 42, "negated"),
    )  # fmt: skip
    pneumonia = _condition(
        "bee7f921-c567-5df8-8cb4-e06716a870ce", "unconfirmed",
        ("J18.9", "Pneumonia, unspecified organism"), "pneumonia", _evidence(53, 62, "possible"),
    )  # fmt: skip
    asthma = _condition(
        "4690e980-5318-5d28-9f68-42e56a2f6f21", "confirmed",
        ("J45.909", "Unspecified asthma, uncomplicated"), "Asthma",
        _evidence(127, 133, "present"),
    )  # fmt: skip
    for condition in (hypertension, pneumonia, asthma):
        condition["clinicalStatus"] = ACTIVE
    assert found == [hypertension, chest_pain, pneumonia, asthma]  # no family diabetes


def _entity(text: str, start: int, **flags: Any) -> ClinicalEntity:
    values = {"negated": False, "uncertain": False, "historical": False, "hypothetical": False,
              "family": False, "icd10": None, **flags}  # fmt: skip
    return ClinicalEntity(text, "Disease", start, start + len(text), None, **values)


def test_uncoded_and_only_historical_conditions_have_text_and_no_clinical_status() -> None:
    annotation = NoteAnnotation(
        text="Past Wobbly syndrome. Maybe Wobbly syndrome. If fever, call.",
        sentences=(),
        sections=(),
        entities=(
            _entity("Wobbly syndrome", 5, historical=True),
            _entity("Wobbly syndrome", 28, uncertain=True, historical=True),
            _entity("fever", 48, hypothetical=True, icd10=icd10_code("R50.9")),
        ),
    )
    found = condition_resources(annotation, note_id=NOTE_ID, patient_id="p-1", created=CREATED)
    assert [c.model_dump(mode="json", exclude_none=True) for c in found] == [
        _condition("d66bca4d-1088-58cc-b68a-058da2368f4a", "confirmed", None, "Wobbly syndrome",
                   _evidence(5, 20, "historical")),
        _condition("8b6b28bb-f4e4-537a-8c88-42b065863dff", "unconfirmed", None, "Wobbly syndrome",
                   _evidence(28, 43, "possible")),
    ]  # fmt: skip


def test_document_reference_carries_the_note_as_a_checked_attachment() -> None:
    document = document_reference(
        "Héllo", note_id=NOTE_ID, patient_id="p-1", created=CREATED, author_id="u-1"
    )
    assert document.model_dump(mode="json", exclude_none=True) == {
        "resourceType": "DocumentReference",
        "id": NOTE_ID,
        "status": "current",
        "docStatus": "final",
        "type": {"coding": [{"system": "http://loinc.org", "code": "34109-9", "display": "Note"}]},
        "subject": {"reference": "Patient/p-1"},
        "date": "2026-01-02T03:04:05Z",
        "author": [{"reference": "Practitioner/u-1"}],
        "content": [{"attachment": {
            "contentType": "text/plain; charset=utf-8", "data": "SMOpbGxv", "size": 6,
            "hash": "fYLnV85BlNvzxTbaYzaQrXw5bbI=",
        }}],
    }  # fmt: skip


def _resource(entry: BundleEntry) -> Resource:
    assert entry.resource is not None
    return entry.resource


def test_bundle_validates_and_lists_the_document_first() -> None:
    bundle = note_bundle(annotate_note(TEXT), note_id=NOTE_ID, patient_id="p-1", created=CREATED)
    again = Bundle.model_validate_json(bundle.model_dump_json())
    entries = again.entry or []
    assert [_resource(e).get_resource_type() for e in entries] == [
        "DocumentReference", "Condition", "Condition", "Condition", "Condition",
    ]  # fmt: skip
    assert [e.fullUrl for e in entries][:1] == [f"urn:uuid:{NOTE_ID}"]
    assert again.type == "collection"
    assert verification_status(_entity("x", 0, negated=True, uncertain=True)) == "refuted"


def test_ids_must_be_uuids_and_times_aware() -> None:
    with pytest.raises(DataError, match="is not a UUID"):
        document_reference("x", note_id="note-1", patient_id="p", created=CREATED)
    with pytest.raises(DataError, match="naive"):
        note_bundle(
            annotate_note("Asthma."), note_id=NOTE_ID, patient_id="p", created=datetime(2026, 1, 1)
        )
