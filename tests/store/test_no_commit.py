"""The store never commits a caller's unit of work: a write rolled back leaves nothing.

Only a recorded access denial is committed on the spot (so a rollback cannot erase it).
"""

from __future__ import annotations

from datetime import date

import pytest
import sqlalchemy as sa

from clinsight.errors import PermissionDeniedError
from clinsight.security.clinical import add_note, add_study, list_notes
from clinsight.security.records import create_patient
from clinsight.store.tables import AuditRow, CareTeam, Note, Patient, Study
from tests.support.store import MakeContext, People


def _count(ctx_session: sa.orm.Session, table: type) -> int:
    return ctx_session.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def test_store_writes_rolled_back_leave_no_rows_and_no_file(
    people: People, context: MakeContext
) -> None:
    ctx = context(people.alice)
    before = {
        table: _count(ctx.session, table) for table in (Patient, CareTeam, Note, Study, AuditRow)
    }
    ctx.session.rollback()
    patient = create_patient(
        ctx, mrn="MRN-R", name="Ada Lovelace", birth_date=date(1815, 12, 10), sex="female"
    )
    add_note(ctx, patient.id, "Denies chest pain.")
    study = add_study(ctx, patient.id, b"image bytes", modality="PNG")
    blob = ctx.files_dir / f"{study.id[:2]}/{study.id}.enc"
    assert blob.is_file()  # the file is written before the rows; the service removes it
    ctx.session.rollback()
    after = {table: _count(ctx.session, table) for table in before}
    assert after == before
    assert before[Patient] == before[Note] == before[Study] == 0


def test_a_denial_is_committed_and_survives_the_callers_rollback(
    people: People, context: MakeContext
) -> None:
    owner = context(people.alice)
    patient = create_patient(
        owner, mrn="MRN-D", name="Grace Hopper", birth_date=date(1906, 12, 9), sex="female"
    )
    owner.session.commit()
    other = context(people.bob)
    with pytest.raises(PermissionDeniedError):
        list_notes(other, patient.id)
    other.session.rollback()
    denied = other.session.execute(
        sa.select(AuditRow.action, AuditRow.outcome).where(AuditRow.outcome == "denied")
    ).all()
    assert denied == [("note.list", "denied")]
    assert _count(other.session, Note) == 0
