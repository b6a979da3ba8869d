"""Notes, studies, predictions and feedback under the patient access policy.

Each function finds the patient a record belongs to, decides (`security.access`: a
refusal is audited and committed) and then calls the store, which encrypts or decrypts,
writes and audits, flagging reads and writes made under break-glass. None commits.
"""

from __future__ import annotations

from collections.abc import Sequence

from clinsight.security.access import require_patient_access
from clinsight.store import notes, studies
from clinsight.store.actors import PatientAccess
from clinsight.store.notes import NoteRecord
from clinsight.store.repositories import StoreContext
from clinsight.store.studies import (
    FeedbackRecord,
    LabelLookup,
    PredictionDraft,
    PredictionRecord,
    StudyRecord,
)
from clinsight.store.tables import Verdict

__all__ = [
    "add_note",
    "add_study",
    "check_new_note",
    "get_note",
    "get_prediction",
    "list_feedback",
    "list_notes",
    "list_predictions",
    "list_studies",
    "read_study",
    "record_feedback",
    "record_prediction",
]


def _glass(ctx: StoreContext, patient_id: str, action: str) -> bool:
    access = require_patient_access(ctx.session, ctx.actor, patient_id, action)
    return access is PatientAccess.BREAK_GLASS


def check_new_note(ctx: StoreContext, patient_id: str, text: str) -> PatientAccess:
    """Refuse a note that `add_note` would refuse, before any work is spent on it.

    Raises:
        PermissionDeniedError: the actor may not open this patient (the denial is committed).
        RecordNotFoundError: no patient has this id.
        DataError: the text is blank or longer than `store.notes.MAX_NOTE_CHARS` characters.
    """
    access = require_patient_access(ctx.session, ctx.actor, patient_id, "note.create")
    notes.validate_note(ctx, patient_id, text)
    return access


def add_note(ctx: StoreContext, patient_id: str, text: str) -> NoteRecord:
    """Store a note for a patient, written by the actor, its text encrypted.

    Raises:
        As `check_new_note`.
    """
    access = check_new_note(ctx, patient_id, text)
    return notes.insert_note(ctx, patient_id, text, break_glass=access is PatientAccess.BREAK_GLASS)


def get_note(ctx: StoreContext, note_id: str) -> NoteRecord:
    """A note with its text, if the actor may open its patient.

    Raises:
        RecordNotFoundError: no note has this id.
        PermissionDeniedError: the actor may not open its patient (the denial is committed).
        DecryptionError: the stored text was altered or moved.
    """
    glass = _glass(ctx, notes.note_patient_id(ctx, note_id), "note.read")
    return notes.read_note(ctx, note_id, break_glass=glass)


def list_notes(ctx: StoreContext, patient_id: str) -> list[NoteRecord]:
    """A patient's notes with their text, newest first (one audit entry for the list).

    Raises:
        PermissionDeniedError: the actor may not open this patient (the denial is committed).
        DecryptionError: a stored text was altered or moved.
    """
    return notes.read_notes(ctx, patient_id, break_glass=_glass(ctx, patient_id, "note.list"))


def add_study(
    ctx: StoreContext,
    patient_id: str,
    content: bytes,
    *,
    modality: str,
    patient_mismatch: tuple[str, ...] = (),
) -> StudyRecord:
    """Store an uploaded image encrypted on disk and record it for the patient, with any
    patient mismatch the uploader confirmed (the caller commits and, if that fails, removes
    the file with `store.studies.discard_study_file`).

    Raises:
        PermissionDeniedError: the actor may not open this patient (the denial is committed).
    """
    glass = _glass(ctx, patient_id, "study.create")
    return studies.insert_study(
        ctx, patient_id, content, modality=modality, break_glass=glass,
        patient_mismatch=patient_mismatch,
    )  # fmt: skip


def read_study(ctx: StoreContext, study_id: str) -> tuple[StudyRecord, bytes]:
    """A study's metadata and decrypted content, checked against its sha256.

    Raises:
        RecordNotFoundError: no study has this id.
        PermissionDeniedError: the actor may not open its patient.
        DecryptionError: the file is missing or does not match its record.
    """
    glass = _glass(ctx, studies.study_patient_id(ctx, study_id), "study.read")
    return studies.read_study(ctx, study_id, break_glass=glass)


def list_studies(ctx: StoreContext, patient_id: str) -> list[StudyRecord]:
    """A patient's studies, newest first.

    Raises:
        PermissionDeniedError: the actor may not open this patient.
    """
    return studies.read_studies(ctx, patient_id, break_glass=_glass(ctx, patient_id, "study.list"))


def record_prediction(ctx: StoreContext, study_id: str, draft: PredictionDraft) -> PredictionRecord:
    """Store a prediction on a study with its provenance, made by the actor.

    Raises:
        RecordNotFoundError: no study has this id.
        PermissionDeniedError: the actor may not open its patient.
        DataError: a probability or confidence outside [0, 1].
    """
    glass = _glass(ctx, studies.study_patient_id(ctx, study_id), "prediction.create")
    return studies.insert_prediction(ctx, study_id, draft, break_glass=glass)


def get_prediction(ctx: StoreContext, prediction_id: str) -> PredictionRecord:
    """One prediction with its provenance.

    Raises:
        RecordNotFoundError: no prediction has this id.
        PermissionDeniedError: the actor may not open its patient.
    """
    glass = _glass(ctx, studies.prediction_patient_id(ctx, prediction_id), "prediction.read")
    return studies.read_prediction(ctx, prediction_id, break_glass=glass)


def list_predictions(ctx: StoreContext, study_id: str) -> list[PredictionRecord]:
    """A study's predictions, newest first.

    Raises:
        RecordNotFoundError: no study has this id.
        PermissionDeniedError: the actor may not open its patient.
    """
    glass = _glass(ctx, studies.study_patient_id(ctx, study_id), "prediction.list")
    return studies.read_predictions(ctx, study_id, break_glass=glass)


def record_feedback(
    ctx: StoreContext,
    prediction_id: str,
    verdict: Verdict,
    *,
    labels: LabelLookup,
    reason: str | None = None,
    override_label: str | None = None,
) -> FeedbackRecord:
    """Store the actor's verdict as their current one on a prediction (an earlier one is kept
    as history); an override needs a reason (kept encrypted) and one of the model's labels.

    Raises:
        RecordNotFoundError: no prediction has this id.
        PermissionDeniedError: the actor may not open its patient.
        DataError: an override without label or reason, a label on a non-override, or a
            label the model does not have.
    """
    glass = _glass(ctx, studies.prediction_patient_id(ctx, prediction_id), "feedback.create")
    return studies.insert_feedback(
        ctx, prediction_id, verdict, labels=labels, reason=reason, override_label=override_label,
        break_glass=glass,
    )  # fmt: skip


def list_feedback(
    ctx: StoreContext, patient_id: str, prediction_ids: Sequence[str]
) -> list[FeedbackRecord]:
    """Every version of the verdicts on the patient's predictions among `prediction_ids`,
    oldest first (one audit entry).

    Raises:
        PermissionDeniedError: the actor may not open this patient (the denial is committed).
        DecryptionError: a stored reason was altered or moved.
    """
    glass = _glass(ctx, patient_id, "feedback.list")
    return studies.read_feedback(ctx, patient_id, prediction_ids, break_glass=glass)
