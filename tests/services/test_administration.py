"""Administration use cases: accounts (disable, enable, reset, role), care teams by MRN and
break-glass grants; each change committed with its audit entry, refusals audited."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from clinsight.config import Settings
from clinsight.errors import (
    AuthenticationError,
    DataError,
    PermissionDeniedError,
    RecordNotFoundError,
)
from clinsight.security.admin import list_accounts
from clinsight.security.tokens import TokenIssuer
from clinsight.services import break_glass, care_teams, users
from clinsight.services.auth import authenticate_password
from clinsight.services.patients import open_break_glass, patient_timeline, register_patient
from clinsight.store.actors import Principal
from clinsight.store.crypto import KeyRing
from clinsight.store.repositories import StoreContext
from clinsight.store.roles import Role
from clinsight.store.tables import AuditRow, User, utcnow
from tests.support.store import PASSWORD, MakeContext, People

REASON = "unconscious in the emergency room"


def _last(session: Session) -> tuple[str, str, str | None]:
    row = session.execute(
        select(AuditRow.action, AuditRow.outcome, AuditRow.resource_id)
        .order_by(AuditRow.seq.desc())
        .limit(1)
    ).one()
    return row.action, row.outcome, row.resource_id


def _on(session: Session, keyring: KeyRing, actor: Principal) -> StoreContext:
    return StoreContext(session, keyring, Path("unused"), actor)


def test_disabling_ends_sessions_and_enabling_restores_login(
    sessions: sessionmaker[Session], settings: Settings, keyring: KeyRing, people: People
) -> None:
    issuer = TokenIssuer(b"k" * 32, settings)
    with sessions() as session:
        pair = issuer.start_session(session, people.alice)
        session.commit()
        admin = _on(session, keyring, people.admin)
        done = users.set_account_active(admin, people.alice.user_id, active=False)
        assert (done.username, done.active) == ("alice", False)
        assert _last(session) == ("user.disable", "success", people.alice.user_id)
        with pytest.raises(AuthenticationError, match="this session has ended"):
            issuer.authenticate(session, pair.access_token)
        with pytest.raises(AuthenticationError):
            authenticate_password(session, "alice", PASSWORD, settings=settings)
        users.set_account_active(admin, people.alice.user_id, active=True)
        assert authenticate_password(session, "alice", PASSWORD, settings=settings) == people.alice


@pytest.mark.parametrize("change", ["disable", "demote"])
def test_an_admin_cannot_disable_or_demote_themselves_or_the_last_admin(
    sessions: sessionmaker[Session],
    settings: Settings,
    keyring: KeyRing,
    people: People,
    change: str,
) -> None:
    def act(session: Session, actor: Principal, user_id: str) -> object:
        ctx = _on(session, keyring, actor)
        if change == "disable":
            return users.set_account_active(ctx, user_id, active=False)
        return users.change_account_role(ctx, user_id, Role.CLINICIAN)

    verb = "disable" if change == "disable" else "demote"
    with sessions() as session:
        with pytest.raises(PermissionDeniedError, match=f"^you may not {verb} your own account"):
            act(session, people.admin, people.admin.user_id)
        assert _last(session)[:2] == (
            "user.disable" if verb == "disable" else "user.role",
            "denied",
        )
        # a second admin may not remove the first while it is the last active one
        other = users.create_account(session, settings, username="root2", password=PASSWORD,
                                     role=Role.CLINICIAN, actor=people.admin)  # fmt: skip
        deputy = Principal(other.id, other.username, Role.ADMIN)  # acting as an admin
        with pytest.raises(PermissionDeniedError, match=r"'admin' is the last active admin"):
            act(session, deputy, people.admin.user_id)
        assert session.get(User, people.admin.user_id).active  # type: ignore[union-attr]
        with pytest.raises(PermissionDeniedError, match="needs the role admin"):
            act(session, people.alice, people.bob.user_id)


def test_a_reset_gives_a_one_time_password_clears_the_lock_and_ends_sessions(
    sessions: sessionmaker[Session], settings: Settings, keyring: KeyRing, people: People
) -> None:
    issuer = TokenIssuer(b"k" * 32, settings)
    with sessions() as session:
        pair = issuer.start_session(session, people.bob)
        bob = session.get(User, people.bob.user_id)
        assert bob is not None
        bob.locked_until = utcnow() + timedelta(hours=1)
        session.commit()
        admin = _on(session, keyring, people.admin)
        listed = {u.username: u.locked for u in list_accounts(admin)}
        assert listed == {"admin": False, "alice": False, "auditor": False, "bob": True}
        reset = users.reset_account_password(admin, settings, people.bob.user_id)
        assert len(reset.temporary_password) == 20
        assert (reset.account.username, reset.account.locked) == ("bob", False)
        details = session.execute(select(AuditRow.details).where(
            AuditRow.action == "user.reset_password")).scalar_one()  # fmt: skip
        assert details == {"sessions_ended": 1}
        with pytest.raises(AuthenticationError):
            issuer.authenticate(session, pair.access_token)
        assert authenticate_password(session, "bob", reset.temporary_password, settings=settings)


def test_a_role_change_is_audited_with_both_roles(
    sessions: sessionmaker[Session], keyring: KeyRing, people: People
) -> None:
    with sessions() as session:
        admin = _on(session, keyring, people.admin)
        done = users.change_account_role(admin, people.bob.user_id, Role.AUDITOR)
        assert done.role is Role.AUDITOR
        row = session.execute(select(AuditRow.details).where(AuditRow.action == "user.role"))
        assert row.scalar_one() == {"from_role": "clinician", "to_role": "auditor",
                                    "sessions_ended": 0}  # fmt: skip


def test_care_teams_by_mrn_add_list_remove(context: MakeContext, people: People) -> None:
    clinic = context(people.alice)
    patient = register_patient(clinic, mrn="MRN-7", name="Ada Lovelace",
                               birth_date=date(1980, 12, 10), sex="female")  # fmt: skip
    ctx = context(people.admin)
    team = care_teams.add_member(ctx, " MRN-7 ", "Bob")
    assert (team.patient_id, [m.username for m in team.members]) == (patient.id, ["alice", "bob"])
    assert team.reference == f"patient {patient.id[:8]}"
    assert [m.username for m in care_teams.remove_member(ctx, "MRN-7", "bob").members] == ["alice"]
    with pytest.raises(RecordNotFoundError, match="'bob' is not on this patient's care team"):
        care_teams.remove_member(ctx, "MRN-7", "bob")
    with pytest.raises(RecordNotFoundError, match="no patient has this MRN"):
        care_teams.care_team(ctx, "MRN-8")
    with pytest.raises(DataError, match="only active clinicians join care teams"):
        care_teams.add_member(ctx, "MRN-7", "auditor")
    ctx.session.rollback()  # as the pages and routes do after a refusal
    with pytest.raises(PermissionDeniedError, match="needs the role admin"):
        care_teams.care_team(context(people.alice), "MRN-7")
    actions = ctx.session.execute(select(AuditRow.action).order_by(AuditRow.seq)).scalars().all()
    assert [a for a in dict.fromkeys(actions) if a.startswith("care_team")] == [
        "care_team.assign",
        "care_team.list",
        "care_team.remove",
    ]


def test_break_glass_lookup_duration_banner_and_the_auditors_list(
    context: MakeContext, people: People, settings: Settings
) -> None:
    patient = register_patient(context(people.alice), mrn="MRN-9", name="Grace Hopper",
                               birth_date=date(1906, 12, 9), sex="female")  # fmt: skip
    bob = context(people.bob)
    assert break_glass.emergency_lookup(bob, mrn="MRN-9") == break_glass.EmergencyLookup(
        patient.id, False
    )
    assert break_glass.emergency_lookup(bob, mrn="nope").patient_id is None
    with pytest.raises(DataError, match="lasts 1 to 60 minutes"):
        open_break_glass(bob, settings, patient.id, REASON, minutes=61)
    grant = open_break_glass(bob, settings, patient.id, REASON, minutes=15)
    assert timedelta(minutes=14) < grant.expires_at - utcnow() <= timedelta(minutes=15)
    assert break_glass.emergency_lookup(bob, patient_id=patient.id).accessible
    timeline = patient_timeline(bob, patient.id)
    assert timeline.emergency is not None
    assert (timeline.emergency.reason, timeline.emergency.expires_at) == (REASON, grant.expires_at)
    assert patient_timeline(context(people.alice), patient.id).emergency is None  # care team
    log = break_glass.grant_log(context(people.auditor))
    assert [(g.username, g.patient_id, g.reason) for g in log.active] == [
        ("bob", patient.id, REASON)
    ]
    assert log.ended == []
    with pytest.raises(PermissionDeniedError, match="needs the role auditor"):
        break_glass.grant_log(context(people.admin))
    with pytest.raises(PermissionDeniedError, match="needs the role clinician"):
        break_glass.emergency_lookup(context(people.admin), mrn="MRN-9")
