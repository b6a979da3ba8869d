"""The API and the web reach the same service function for the same action."""

from __future__ import annotations

from clinsight.api.routes import notes as api_notes
from clinsight.api.routes import patients as api_patients
from clinsight.services import notes as note_service
from clinsight.services import patients as patient_service
from clinsight.web import notes as web_notes
from clinsight.web import pages as web_pages


def test_note_creation_is_one_service_function() -> None:
    assert api_notes.create_note is note_service.create_note
    assert web_notes.create_note is note_service.create_note


def test_patient_creation_is_one_service_function() -> None:
    assert api_patients.register_patient is patient_service.register_patient
    assert web_pages.register_patient is patient_service.register_patient
