"""Use cases around a patient: register, find, read (with the timeline), care team and
and break-glass. The API and the web call these same
functions; each commits its own work (a refusal is committed by the policy)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from clinsight.config import Settings
from clinsight.security import records
from clinsight.security.access import BreakGlass, grant_break_glass
from clinsight.security.clinical import list_feedback, list_predictions, list_studies
from clinsight.services.break_glass import emergency_access
from clinsight.store.accounts import GrantRecord
from clinsight.store.repositories import PatientPage, PatientRecord, StoreContext
from clinsight.store.studies import PredictionFeedback, PredictionRecord, StudyRecord

__all__ = [
    "PatientTimeline",
    "StudyEntry",
    "add_care_team_member",
    "find_patient",
    "open_break_glass",
    "patient_timeline",
    "read_patient",
    "register_patient",
    "search_patients",
    "studies_with_findings",
]


@dataclass(frozen=True)
class StudyEntry:
    """A study and its predictions, newest first, with the verdicts on each prediction
    (keyed by prediction id; a prediction without feedback has no entry)."""

    study: StudyRecord
    predictions: list[PredictionRecord]
    feedback: dict[str, PredictionFeedback] = field(default_factory=dict)


@dataclass(frozen=True)
class PatientTimeline:
    """A patient's record with every study and prediction, newest first, and the live
    break-glass grant that opens it (None under the care team)."""

    patient: PatientRecord
    studies: list[StudyEntry]
    emergency: GrantRecord | None = None


def patient_timeline(ctx: StoreContext, patient_id: str) -> PatientTimeline:
    """The patient and their studies with predictions and the verdicts on them (each read
    audited and committed).

    Raises:
        PermissionDeniedError: the actor may not open this patient.
        RecordNotFoundError: no such patient.
    """
    patient = records.get_patient(ctx, patient_id)
    entries = studies_with_findings(ctx, patient_id)
    emergency = emergency_access(ctx, patient_id)
    ctx.session.commit()
    return PatientTimeline(patient, entries, emergency)


def studies_with_findings(ctx: StoreContext, patient_id: str) -> list[StudyEntry]:
    """The patient's studies, newest first, each with its predictions and the verdicts on
    them (the reads audited; the caller commits).

    Raises:
        PermissionDeniedError: the actor may not open this patient.
    """
    found = [(study, list_predictions(ctx, study.id)) for study in list_studies(ctx, patient_id)]
    ids = [p.id for _, predictions in found for p in predictions]
    feedback = PredictionFeedback.by_prediction(list_feedback(ctx, patient_id, ids) if ids else [])
    return [
        StudyEntry(
            study, predictions, {p.id: feedback[p.id] for p in predictions if p.id in feedback}
        )
        for study, predictions in found
    ]


def register_patient(
    ctx: StoreContext, *, mrn: str, name: str, birth_date: date, sex: str
) -> PatientRecord:
    """Register a patient (clinicians); the creator joins the care team. Committed.

    Raises:
        PermissionDeniedError: the actor is not a clinician.
        DataError: empty MRN or name, or an unknown sex.
        DuplicateRecordError: a patient with this MRN exists.
    """
    record = records.create_patient(ctx, mrn=mrn, name=name, birth_date=birth_date, sex=sex)
    ctx.session.commit()
    return record


def read_patient(ctx: StoreContext, patient_id: str) -> PatientRecord:
    """A patient's record (care team or break-glass); the read's audit entry is committed.

    Raises:
        PermissionDeniedError: the actor may not open this patient.
        RecordNotFoundError: no such patient.
    """
    record = records.get_patient(ctx, patient_id)
    ctx.session.commit()
    return record


def search_patients(
    ctx: StoreContext, query: str = "", *, limit: int = 100, offset: int = 0
) -> PatientPage:
    """One page of the actor's patients whose MRN or name contains `query`, in natural
    order of name, with the total (see `security.records`). Committed.

    Raises:
        PermissionDeniedError: the actor is not a clinician.
    """
    found = records.search_patients(ctx, query, limit=limit, offset=offset)
    ctx.session.commit()
    return found


def find_patient(ctx: StoreContext, mrn: str) -> str | None:
    """The id of the patient with this MRN, without PHI (clinicians). Committed.

    Raises:
        PermissionDeniedError: the actor is not a clinician.
    """
    found = records.find_patient_id(ctx, mrn)
    ctx.session.commit()
    return found


def add_care_team_member(ctx: StoreContext, user_id: str, patient_id: str) -> None:
    """Add a clinician to a patient's care team (admins; idempotent). Committed.

    Raises:
        PermissionDeniedError: the actor is not an admin.
        RecordNotFoundError: no such user or patient.
        DataError: the user is not an active clinician.
    """
    records.assign_care_team(ctx, user_id, patient_id)
    ctx.session.commit()


def open_break_glass(
    ctx: StoreContext,
    settings: Settings,
    patient_id: str,
    reason: str,
    *,
    minutes: int | None = None,
) -> BreakGlass:
    """Grant the acting clinician emergency access to a patient for `minutes` (default and
    most: the setting), flagged and expiring. Committed.

    Raises:
        PermissionDeniedError: the actor is not a clinician.
        DataError: the reason is too short or the duration out of range.
        RecordNotFoundError: no such patient.
    """
    grant = grant_break_glass(
        ctx.session, ctx.keyring, settings, ctx.actor, patient_id, reason, minutes=minutes
    )
    ctx.session.commit()
    return grant
