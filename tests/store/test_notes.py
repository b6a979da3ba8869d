"""Clinical notes in the store: encrypted text, care-team policy, audit of every access."""

from __future__ import annotations

from datetime import date

import pytest
import sqlalchemy as sa

from clinsight.config import Settings
from clinsight.errors import DataError, DecryptionError, PermissionDeniedError, RecordNotFoundError
from clinsight.security.clinical import add_note, get_note, list_notes
from clinsight.security.records import create_patient
from clinsight.store import crypto
from clinsight.store.notes import MAX_NOTE_CHARS, deid_key
from clinsight.store.repositories import StoreContext
from clinsight.store.tables import AuditRow, Note
from tests.support.store import MakeContext, People

TEXT = "Ada Lovelace, seen 2026-01-02. Denies chest pain. History of asthma."


def _patient(ctx: StoreContext, mrn: str = "MRN-1") -> str:
    patient = create_patient(
        ctx, mrn=mrn, name="Ada Lovelace", birth_date=date(1815, 12, 10), sex="female"
    )
    ctx.session.commit()
    return patient.id


def _audit(ctx: StoreContext) -> list[tuple[str | None, str, str | None, str]]:
    rows = ctx.session.execute(sa.select(AuditRow).order_by(AuditRow.seq)).scalars()
    return [(r.actor_id, r.action, r.resource_id, r.outcome) for r in rows]


def test_note_is_stored_encrypted_and_reads_back_newest_first(
    people: People, context: MakeContext
) -> None:
    ctx = context(people.alice)
    patient_id = _patient(ctx)
    first = add_note(ctx, patient_id, TEXT)
    second = add_note(ctx, patient_id, "Follow-up: asthma controlled.")
    ctx.session.commit()
    stored = ctx.session.execute(sa.select(Note.text_ct, Note.chars).order_by(Note.chars)).all()
    assert [chars for _, chars in stored] == [29, len(TEXT)]
    assert all(token.startswith("v1:") and "asthma" not in token for token, _ in stored)
    assert get_note(ctx, first.id) == first
    assert (first.author_id, first.patient_id, first.text) == (
        people.alice.user_id,
        patient_id,
        TEXT,
    )
    listed = list_notes(ctx, patient_id)
    assert {n.id for n in listed} == {first.id, second.id}
    assert [n.created_at for n in listed] == sorted((n.created_at for n in listed), reverse=True)
    actions = [(a, resource, outcome) for _, a, resource, outcome in _audit(ctx)]
    assert actions[-4:] == [
        ("note.create", first.id, "success"),
        ("note.create", second.id, "success"),
        ("note.read", first.id, "success"),
        ("note.list", patient_id, "success"),
    ]


def test_other_clinicians_and_other_roles_are_denied_and_audited(
    people: People, context: MakeContext
) -> None:
    ctx = context(people.alice)
    patient_id = _patient(ctx)
    note = add_note(ctx, patient_id, TEXT)
    ctx.session.commit()
    for actor in (people.bob, people.admin, people.auditor):
        other = context(actor)
        with pytest.raises(PermissionDeniedError, match="may not open patient"):
            get_note(other, note.id)
        with pytest.raises(PermissionDeniedError, match="may not open patient"):
            list_notes(other, patient_id)
        with pytest.raises(PermissionDeniedError, match="may not open patient"):
            add_note(other, patient_id, "I should not write here.")
    denied = [(actor, action) for actor, action, _, outcome in _audit(ctx) if outcome == "denied"]
    assert denied == [
        (who.user_id, action)
        for who in (people.bob, people.admin, people.auditor)
        for action in ("note.read", "note.list", "note.create")
    ]
    assert ctx.session.execute(sa.select(sa.func.count()).select_from(Note)).scalar_one() == 1


def test_blank_oversize_and_unknown_notes_are_refused(people: People, context: MakeContext) -> None:
    ctx = context(people.alice)
    patient_id = _patient(ctx)
    with pytest.raises(DataError, match="the note is empty"):
        add_note(ctx, patient_id, " \n ")
    with pytest.raises(DataError, match=f"more than {MAX_NOTE_CHARS}"):
        add_note(ctx, patient_id, "x" * (MAX_NOTE_CHARS + 1))
    with pytest.raises(RecordNotFoundError, match="no note with id nope"):
        get_note(ctx, "nope")


def test_a_text_moved_to_another_note_no_longer_decrypts(
    people: People, context: MakeContext
) -> None:
    ctx = context(people.alice)
    patient_id = _patient(ctx)
    first, second = add_note(ctx, patient_id, TEXT), add_note(ctx, patient_id, "Other note.")
    ctx.session.commit()
    token = ctx.session.get(Note, first.id).text_ct  # type: ignore[union-attr]
    ctx.session.execute(sa.update(Note).where(Note.id == second.id).values(text_ct=token))
    ctx.session.commit()
    with pytest.raises(DecryptionError, match="fails authentication"):
        get_note(ctx, second.id)


def test_deid_key_is_per_patient_and_secret(people: People, context: MakeContext) -> None:
    ctx = context(people.alice)
    one, two = _patient(ctx, "MRN-1"), _patient(ctx, "MRN-2")
    assert deid_key(ctx, one) == deid_key(ctx, one)
    assert deid_key(ctx, one) != deid_key(ctx, two)
    assert len(deid_key(ctx, one)) == 64
    assert one not in deid_key(ctx, one)


def test_key_rotation_reencrypts_note_text(
    people: People, context: MakeContext, settings: Settings
) -> None:
    ctx = context(people.alice)
    note = add_note(ctx, _patient(ctx), TEXT)
    ctx.session.commit()
    ring = crypto.rotate_key(settings.resolved_key_file)
    report = crypto.reencrypt_all(ctx.session, ring, settings.resolved_files_dir)
    ctx.session.commit()
    assert report.fields == 5  # four patient columns and the note
    token = ctx.session.get(Note, note.id).text_ct  # type: ignore[union-attr]
    assert crypto.field_key_id(token) == ring.primary
    rotated = StoreContext(ctx.session, ring, ctx.files_dir, ctx.actor)
    assert get_note(rotated, note.id).text == TEXT
