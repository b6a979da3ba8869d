"""Clinical notes of a patient: stored encrypted, read back only by those who may open the patient.

Like `store.repositories`, every function encrypts or decrypts with the key ring and
appends an audit entry (ids and sizes only, never text); the access checks run first in
`security.clinical`, and the service commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from clinsight.errors import DataError, RecordNotFoundError
from clinsight.store.repositories import StoreContext
from clinsight.store.tables import Note, Patient, new_id

__all__ = [
    "MAX_NOTE_CHARS",
    "NoteRecord",
    "deid_key",
    "insert_note",
    "note_patient_id",
    "read_note",
    "read_notes",
    "validate_note",
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


def validate_note(ctx: StoreContext, patient_id: str, text: str) -> None:
    """Refuse a note that `insert_note` would refuse, before any work is spent on it.

    Raises:
        RecordNotFoundError: no patient has this id.
        DataError: the text is blank or longer than `MAX_NOTE_CHARS` characters.
    """
    if ctx.session.get(Patient, patient_id) is None:
        raise RecordNotFoundError(f"no patient with id {patient_id}")
    if not text.strip():
        raise DataError("the note is empty; paste or upload its text")
    if len(text) > MAX_NOTE_CHARS:
        raise DataError(
            f"the note has {len(text)} characters, more than {MAX_NOTE_CHARS}; split it up"
        )


def insert_note(ctx: StoreContext, patient_id: str, text: str, *, break_glass: bool) -> NoteRecord:
    """Store a note for a patient, written by the actor, its text encrypted.

    Raises:
        As `validate_note`.
    """
    validate_note(ctx, patient_id, text)
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
        break_glass=break_glass,
    )
    return NoteRecord(note_id, patient_id, row.author_id, text, row.created_at)


def note_patient_id(ctx: StoreContext, note_id: str) -> str:
    """The id of the patient a note belongs to (no PHI, not audited: the check comes next).

    Raises:
        RecordNotFoundError: no note has this id.
    """
    patient_id = ctx.session.execute(select(Note.patient_id).where(Note.id == note_id)).scalar()
    if patient_id is None:
        raise RecordNotFoundError(f"no note with id {note_id}")
    return patient_id


def read_note(ctx: StoreContext, note_id: str, *, break_glass: bool) -> NoteRecord:
    """A note with its text; `break_glass` flags the read's audit entry.

    Raises:
        RecordNotFoundError: no note has this id.
        DecryptionError: the stored text was altered or moved.
    """
    row = ctx.session.get(Note, note_id)
    if row is None:
        raise RecordNotFoundError(f"no note with id {note_id}")
    record = _record(ctx, row)
    ctx.audit(
        "note.read",
        "note",
        resource_id=note_id,
        patient_id=row.patient_id,
        break_glass=break_glass,
    )
    return record


def read_notes(ctx: StoreContext, patient_id: str, *, break_glass: bool) -> list[NoteRecord]:
    """A patient's notes with their text, newest first (one audit entry for the list).

    Raises:
        DecryptionError: a stored text was altered or moved.
    """
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
        break_glass=break_glass,
    )
    return records
