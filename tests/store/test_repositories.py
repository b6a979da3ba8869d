"""Users, patients and care teams through the repositories: encryption, policy, audit."""

from __future__ import annotations

from datetime import date
from typing import TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from clinsight.config import Settings
from clinsight.errors import DataError, DuplicateRecordError, PermissionDeniedError
from clinsight.security.records import (
    assign_care_team,
    create_patient,
    create_user,
    find_patient_id,
    get_patient,
    list_audit,
    search_patients,
)
from clinsight.store import audit, repositories
from clinsight.store.db import flush_unique
from clinsight.store.repositories import PatientRecord, StoreContext, UserRecord
from clinsight.store.roles import Role
from clinsight.store.tables import User, new_id
from tests.support.store import PASSWORD, MakeContext, People

T = TypeVar("T")


def _ada(ctx: StoreContext, mrn: str = "MRN-4471", name: str = "Ada Lovelace") -> PatientRecord:
    return create_patient(ctx, mrn=mrn, name=name, birth_date=date(1815, 12, 10), sex="Female")


def committed(ctx: StoreContext, value: T) -> T:
    """Commit the unit of work (SQLite lets one writer in at a time) and pass `value` on."""
    ctx.session.commit()
    return value


def _actions(session: Session) -> list[tuple[str, str, str | None]]:
    rows = session.execute(
        sa.text("SELECT action, outcome, patient_id FROM audit_log ORDER BY seq")
    )
    return [tuple(row) for row in rows]


def test_phi_is_ciphertext_in_the_raw_database(
    people: People, context: MakeContext, sessions: sessionmaker[Session]
) -> None:
    ctx = context(people.alice)
    patient = _ada(ctx)
    ctx.session.commit()
    assert patient.mrn == "MRN-4471"
    assert patient.name == "Ada Lovelace"
    assert (patient.birth_date, patient.sex) == (date(1815, 12, 10), "female")
    with sessions() as session:
        raw = " ".join(
            repr(tuple(row))
            for table in ("patients", "audit_log", "care_team")
            for row in session.execute(sa.text(f"SELECT * FROM {table}"))
        )
    # Whole values: a bare "1815" or "4471" turns up by chance in hex hashes and uuids.
    for plaintext in ("MRN-4471", "Lovelace", "Ada", "1815-12-10", "female"):
        assert plaintext not in raw
    assert raw.count("'v1:") == 4


def test_clinician_finds_own_patients_by_mrn_and_name(people: People, context: MakeContext) -> None:
    alice, bob = context(people.alice), context(people.bob)
    ada = committed(alice, _ada(alice))
    grace = committed(alice, _ada(alice, mrn="MRN-7", name="Grace Hopper"))
    committed(bob, _ada(bob, mrn="MRN-8", name="Ada Byron"))

    def found(ctx: StoreContext, query: str = "") -> list[PatientRecord]:
        return committed(ctx, search_patients(ctx, query)).records

    assert found(alice, " mrn-4471") == [ada]
    assert found(alice, "4471") == [ada]  # a fragment of the MRN finds it
    assert found(alice, "ada") == [ada]
    assert found(alice) == [ada, grace]
    assert [p.name for p in found(bob, "ADA")] == ["Ada Byron"]
    assert found(bob, "MRN-4471") == []
    assert committed(bob, find_patient_id(bob, "mrn-4471")) == ada.id
    assert committed(bob, find_patient_id(bob, "MRN-404")) is None
    mine = {ada.id, grace.id}
    listed = [a for a in _actions(alice.session) if a[0] == "patient.list" and a[2] in mine]
    assert listed == [("patient.list", "success", ada.id)] * 4 + [
        ("patient.list", "success", grace.id)
    ]


def test_the_patient_list_pages_in_natural_order(people: People, context: MakeContext) -> None:
    alice = context(people.alice)
    for n in (10, 2, 1, 123, 21):
        committed(alice, _ada(alice, mrn=f"MRN-{n}", name=f"Test Patient {n}"))
    first = committed(alice, search_patients(alice, "test", limit=3))
    assert [p.name for p in first.records] == [f"Test Patient {n}" for n in (1, 2, 10)]
    assert (first.total, first.offset) == (5, 0)
    rest = committed(alice, search_patients(alice, "test", limit=3, offset=3)).records
    assert [p.name for p in rest] == ["Test Patient 21", "Test Patient 123"]


def test_a_birth_date_in_the_future_or_a_missing_sex_is_refused(
    people: People, context: MakeContext
) -> None:
    alice = context(people.alice)
    with pytest.raises(DataError, match="in the future"):
        create_patient(alice, mrn="M-F", name="N", birth_date=date(2099, 1, 1), sex="male")
    with pytest.raises(DataError, match="choose the patient's sex"):
        create_patient(alice, mrn="M-S", name="N", birth_date=date(2000, 1, 1), sex="")


def test_reads_are_audited_and_denials_survive_rollback(
    people: People, context: MakeContext, sessions: sessionmaker[Session]
) -> None:
    alice, bob = context(people.alice), context(people.bob)
    ada = committed(alice, _ada(alice))
    assert committed(alice, get_patient(alice, ada.id)) == ada
    with pytest.raises(PermissionDeniedError, match=r"may not open patient .* break-glass"):
        get_patient(bob, ada.id)
    bob.session.rollback()
    with sessions() as session:
        assert _actions(session)[-3:] == [
            ("patient.create", "success", ada.id),
            ("patient.read", "success", ada.id),
            ("patient.read", "denied", ada.id),
        ]
        assert audit.verify(session).ok


def test_duplicate_mrn_and_invalid_patients_are_refused(
    people: People, context: MakeContext
) -> None:
    ctx = context(people.alice)
    _ada(ctx)
    with pytest.raises(DuplicateRecordError, match="MRN exists"):
        _ada(ctx, mrn=" mrn-4471 ", name="Someone Else")
    with pytest.raises(DataError, match="choose the patient's sex: one of female, male"):
        create_patient(ctx, mrn="M1", name="X Y", birth_date=date(2000, 1, 1), sex="f")
    with pytest.raises(DataError, match="needs an MRN"):
        create_patient(ctx, mrn=" ", name="X Y", birth_date=date(2000, 1, 1), sex="male")


def test_a_duplicate_mrn_committed_after_the_check_is_still_a_duplicate(
    people: People, context: MakeContext, engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite lets one writer in at a time: two creators never pass the check")
    rival = context(people.alice)

    def rival_commits_first() -> str:  # called right after the duplicate check
        monkeypatch.setattr(repositories, "new_id", new_id)  # the tables function it imports
        committed(rival, _ada(rival))
        return new_id()

    monkeypatch.setattr(repositories, "new_id", rival_commits_first)
    with pytest.raises(DuplicateRecordError, match="MRN exists"):
        _ada(context(people.alice))


def test_flush_unique_names_a_unique_violation_a_duplicate(
    people: People, sessions: sessionmaker[Session]
) -> None:
    del people  # alice exists
    with sessions() as session:
        session.add(User(id=new_id(), username="alice", role="clinician", password_hash="x",
                         active=True, failed_logins=0))  # fmt: skip
        with pytest.raises(DuplicateRecordError, match="alice is taken"):
            flush_unique(session, "alice is taken")


@pytest.mark.parametrize("role", ["admin", "auditor"])
def test_only_clinicians_create_patients(people: People, context: MakeContext, role: str) -> None:
    with pytest.raises(PermissionDeniedError, match=f"needs the role clinician.*is {role}"):
        _ada(context(getattr(people, role)))


def test_admin_assigns_clinicians_to_care_team(people: People, context: MakeContext) -> None:
    alice, bob, admin = context(people.alice), context(people.bob), context(people.admin)
    ada = committed(alice, _ada(alice))
    assign_care_team(admin, people.bob.user_id, ada.id)
    assign_care_team(admin, people.bob.user_id, ada.id)
    admin.session.commit()
    assert committed(bob, get_patient(bob, ada.id)) == ada
    with pytest.raises(DataError, match="only active clinicians"):
        assign_care_team(admin, people.auditor.user_id, ada.id)
    admin.session.rollback()
    with pytest.raises(PermissionDeniedError, match="needs the role admin"):
        assign_care_team(bob, people.bob.user_id, ada.id)


def test_create_user_rules(
    people: People, sessions: sessionmaker[Session], settings: Settings
) -> None:
    admin = people.admin
    with sessions() as session:
        made = create_user(
            session,
            settings,
            username=" Carol ",
            password=PASSWORD,
            role=Role.AUDITOR,
            actor=admin,
        )
        assert made == UserRecord(made.id, "carol", Role.AUDITOR, True)
        hashed = session.execute(sa.text("SELECT password_hash FROM users WHERE username='carol'"))
        password_hash = hashed.scalar()
        assert password_hash is not None
        assert password_hash.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
        with pytest.raises(DuplicateRecordError, match="'carol' is taken"):
            create_user(
                session,
                settings,
                username="CAROL",
                password=PASSWORD,
                role=Role.AUDITOR,
                actor=admin,
            )
        with pytest.raises(DataError, match="12 to 256 characters"):
            create_user(
                session, settings, username="dave", password="short", role=Role.AUDITOR, actor=admin
            )
        with pytest.raises(DataError, match="must not be the username"):
            create_user(
                session,
                settings,
                username="davedavedave",
                password="DaveDaveDave",
                role=Role.AUDITOR,
                actor=admin,
            )
        with pytest.raises(PermissionDeniedError, match=r"user\.create needs the role admin"):
            create_user(
                session,
                settings,
                username="eve",
                password=PASSWORD,
                role=Role.ADMIN,
                actor=people.alice,
            )


def test_audit_listing_is_for_auditors_and_is_itself_audited(
    people: People, context: MakeContext
) -> None:
    alice, auditor = context(people.alice), context(people.auditor)
    ada = committed(alice, _ada(alice))
    entries = committed(auditor, list_audit(auditor, patient_id=ada.id))
    assert [(e.action, e.actor_id) for e in entries] == [("patient.create", people.alice.user_id)]
    assert committed(auditor, list_audit(auditor, limit=1))[0].action == "audit.read"
    with pytest.raises(PermissionDeniedError, match=r"audit\.read needs the role auditor"):
        list_audit(alice)
