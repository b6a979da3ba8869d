"""Use cases around a patient: the timeline a clinician reads."""

from __future__ import annotations

from dataclasses import dataclass

from clinsight.store.repositories import PatientRecord, StoreContext, get_patient
from clinsight.store.studies import PredictionRecord, StudyRecord, list_predictions, list_studies

__all__ = ["PatientTimeline", "StudyEntry", "patient_timeline"]


@dataclass(frozen=True)
class StudyEntry:
    """A study and its predictions, newest first."""

    study: StudyRecord
    predictions: list[PredictionRecord]


@dataclass(frozen=True)
class PatientTimeline:
    """A patient's record with every study and prediction, newest first."""

    patient: PatientRecord
    studies: list[StudyEntry]


def patient_timeline(ctx: StoreContext, patient_id: str) -> PatientTimeline:
    """The patient and their studies with predictions (each read audited by the store).

    Raises:
        PermissionDeniedError: the actor may not open this patient.
        RecordNotFoundError: no such patient.
    """
    patient = get_patient(ctx, patient_id)
    entries = [
        StudyEntry(study, list_predictions(ctx, study.id))
        for study in list_studies(ctx, patient_id)
    ]
    return PatientTimeline(patient, entries)
