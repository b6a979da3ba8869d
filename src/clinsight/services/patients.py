"""Use cases around a patient: the timeline a clinician reads, and the accounts admins manage."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from clinsight.security.access import require_role
from clinsight.store.repositories import PatientRecord, StoreContext, UserRecord, get_patient
from clinsight.store.studies import PredictionRecord, StudyRecord, list_predictions, list_studies
from clinsight.store.tables import Role, User

__all__ = ["PatientTimeline", "StudyEntry", "list_users", "patient_timeline"]


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


def list_users(ctx: StoreContext, *, limit: int = 100) -> list[UserRecord]:
    """Accounts by username, at most 100 (admins only; no password hashes).

    Raises:
        PermissionDeniedError: the actor is not an admin.
    """
    require_role(ctx.session, ctx.actor, "user.list", Role.ADMIN)
    rows = ctx.session.execute(
        select(User).order_by(User.username).limit(max(1, min(limit, 100)))
    ).scalars()
    return [UserRecord(u.id, u.username, Role(u.role), u.active) for u in rows]
