"""Clinical notes of a patient: stored encrypted, read back only by those who may open the patient.

Like `store.repositories`, every function checks the access policy, encrypts or
decrypts with the key ring and appends an audit entry (ids and sizes only, never
text); the caller commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from clinsight.errors import DataError, RecordNotFoundError
from clinsight.security.access import PatientAccess, require_patient_access
from clinsight.store.repositories import StoreContext
from clinsight.store.tables import Note, Patient, new_id

__all__ = [
    "MAX_NOTE_CHARS",
    "NoteRecord",
    "add_note",
    "check_new_note",
    "deid_key",
    "get_note",
    "list_notes",
]

MAX_NOTE_CHARS = 100_000


@dataclass(frozen=True)
class NoteRecord:
    """A stored note with its decrypted text."""

    id: str
    patient_id: str
    author_id: str | None
    text: str
    created_at: datetime


def _record(ctx: StoreContext, row: Note) -> NoteRecord:
    text = ctx.keyring.decrypt_field(row.text_ct, table="notes", column="text_ct", row_id=row.id)
    return NoteRecord(row.id, row.patient_id, row.author_id, text, row.created_at)


def deid_key(ctx: StoreContext, patient_id: str) -> str:
    """The secret de-identification key of a patient (keyed hash of the id), so surrogates
    and the date shift are the same across the patient's notes and unguessable elsewhere."""
    return ctx.keyring.blind_index(f"deid:{patient_id}")


def check_new_note(ctx: StoreContext, patient_id: str, text: str) -> PatientAccess:
    """Refuse a note that `add_note` would refuse, before any work is spent on it.

    Raises:
        PermissionDeniedError: the actor may not open this patient (the denial is committed).
        RecordNotFoundError: no patient has this id.
        DataError: the text is blank or longer than `MAX_NOTE_CHARS` characters.
    """
    access = require_patient_access(ctx.session, ctx.actor, patient_id, "note.create")
    if ctx.session.get(Patient, patient_id) is None:
        raise RecordNotFoundError(f"no patient with id {patient_id}")
    if not text.strip():
        raise DataError("the note is empty; paste or upload its text")
    if len(text) > MAX_NOTE_CHARS:
        raise DataError(
            f"the note has {len(text)} characters, more than {MAX_NOTE_CHARS}; split it up"
        )
    return access


def add_note(ctx: StoreContext, patient_id: str, text: str) -> NoteRecord:
    """Store a note for a patient, written by the actor, its text encrypted.

    Raises:
        As `check_new_note`.
    """
    access = check_new_note(ctx, patient_id, text)
    note_id = new_id()
    row = Note(
        id=note_id,
        patient_id=patient_id,
        text_ct=ctx.keyring.encrypt_field(text, table="notes", column="text_ct", row_id=note_id),
        chars=len(text),
        author_id=ctx.actor.user_id,
    )
    ctx.session.add(row)
    ctx.session.flush()
    ctx.audit(
        "note.create",
        "note",
        resource_id=note_id,
        patient_id=patient_id,
        details={"chars": len(text)},
        break_glass=access is PatientAccess.BREAK_GLASS,
    )
    return NoteRecord(note_id, patient_id, row.author_id, text, row.created_at)


def get_note(ctx: StoreContext, note_id: str) -> NoteRecord:
    """A note with its text, if the actor may open its patient.

    Raises:
        RecordNotFoundError: no note has this id.
        PermissionDeniedError: the actor may not open its patient (the denial is committed).
        DecryptionError: the stored text was altered or moved.
    """
    row = ctx.session.get(Note, note_id)
    if row is None:
        raise RecordNotFoundError(f"no note with id {note_id}")
    access = require_patient_access(ctx.session, ctx.actor, row.patient_id, "note.read")
    record = _record(ctx, row)
    ctx.audit(
        "note.read",
        "note",
        resource_id=note_id,
        patient_id=row.patient_id,
        break_glass=access is PatientAccess.BREAK_GLASS,
    )
    return record


def list_notes(ctx: StoreContext, patient_id: str) -> list[NoteRecord]:
    """A patient's notes with their text, newest first (one audit entry for the list).

    Raises:
        PermissionDeniedError: the actor may not open this patient (the denial is committed).
        DecryptionError: a stored text was altered or moved.
    """
    access = require_patient_access(ctx.session, ctx.actor, patient_id, "note.list")
    rows = ctx.session.execute(
        select(Note).where(Note.patient_id == patient_id).order_by(Note.created_at.desc(), Note.id)
    ).scalars()
    records = [_record(ctx, row) for row in rows]
    ctx.audit(
        "note.list",
        "patient",
        resource_id=patient_id,
        patient_id=patient_id,
        details={"count": len(records)},
        break_glass=access is PatientAccess.BREAK_GLASS,
    )
    return records
