"""The access policy: roles x own / other patient x break-glass, denials audited."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from clinsight.config import Settings
from clinsight.errors import DataError, PermissionDeniedError, RecordNotFoundError
from clinsight.security.access import (
    accessible_patient_ids,
    can_access_patient,
    grant_break_glass,
    require_role,
)
from clinsight.security.records import create_patient, get_patient
from clinsight.store.actors import PatientAccess
from clinsight.store.crypto import KeyRing
from clinsight.store.roles import Role
from clinsight.store.tables import BreakGlassGrant, CareTeam, utcnow
from tests.support.store import MakeContext, People

REASON = "unconscious in the emergency department"


def _patient(context: MakeContext, people: People) -> str:
    ctx = context(people.bob)
    patient = create_patient(
        ctx, mrn="MRN-9", name="Alan Turing", birth_date=date(1912, 6, 23), sex="male"
    )
    ctx.session.commit()
    return patient.id


def _last_audit(session: Session) -> tuple[str, str, bool]:
    row = session.execute(
        sa.text("SELECT action, outcome, break_glass FROM audit_log ORDER BY seq DESC")
    ).first()
    assert row is not None
    return row[0], row[1], bool(row[2])


@pytest.mark.parametrize(
    ("who", "relation", "expected"),
    [
        ("alice", "own", PatientAccess.CARE_TEAM),
        ("alice", "other", None),
        ("alice", "break_glass", PatientAccess.BREAK_GLASS),
        ("admin", "own", None),
        ("admin", "other", None),
        ("admin", "break_glass", None),
        ("auditor", "own", None),
        ("auditor", "other", None),
        ("auditor", "break_glass", None),
    ],
)
def test_access_matrix(
    people: People,
    context: MakeContext,
    sessions: sessionmaker[Session],
    keyring: KeyRing,
    who: str,
    relation: str,
    expected: PatientAccess | None,
) -> None:
    patient_id = _patient(context, people)
    principal = getattr(people, who)
    with sessions() as session:  # rows written directly: even bad data grants no PHI by role
        if relation == "own":
            session.add(CareTeam(user_id=principal.user_id, patient_id=patient_id))
        if relation == "break_glass":
            session.add(
                BreakGlassGrant(
                    user_id=principal.user_id,
                    patient_id=patient_id,
                    reason_ct="v1:x:y:z",
                    expires_at=utcnow() + timedelta(minutes=5),
                )
            )
        session.commit()
        assert can_access_patient(session, principal, patient_id) is expected
        assert accessible_patient_ids(session, principal) == ({patient_id} if expected else set())
    ctx = context(principal)
    if expected is None:
        with pytest.raises(PermissionDeniedError, match=f"may not open patient {patient_id}"):
            get_patient(ctx, patient_id)
        assert _last_audit(ctx.session) == ("patient.read", "denied", False)
    else:
        assert get_patient(ctx, patient_id).name == "Alan Turing"
        ctx.session.commit()
        flagged = expected is PatientAccess.BREAK_GLASS
        assert _last_audit(ctx.session) == ("patient.read", "success", flagged)


def test_break_glass_grant_is_reasoned_flagged_and_expires(
    people: People,
    context: MakeContext,
    sessions: sessionmaker[Session],
    keyring: KeyRing,
    settings: Settings,
) -> None:
    patient_id = _patient(context, people)
    now = utcnow()
    with sessions() as session:
        with pytest.raises(DataError, match="reason of at least 10 characters"):
            grant_break_glass(session, keyring, settings, people.alice, patient_id, " urgent ")
        with pytest.raises(RecordNotFoundError, match="no patient with id nope"):
            grant_break_glass(session, keyring, settings, people.alice, "nope", REASON)
        grant = grant_break_glass(
            session, keyring, settings, people.alice, patient_id, REASON, now=now
        )
        session.commit()
        assert grant.expires_at == now + timedelta(minutes=60)
        assert _last_audit(session) == ("break_glass.grant", "success", True)
        stored = session.execute(sa.text("SELECT reason_ct FROM break_glass_grants")).scalar()
        assert stored is not None
        assert REASON not in stored
        assert (
            keyring.decrypt_field(
                stored, table="break_glass_grants", column="reason_ct", row_id=grant.id
            )
            == REASON
        )
        just_before = grant.expires_at - timedelta(microseconds=1)
        assert can_access_patient(session, people.alice, patient_id, now=just_before) is (
            PatientAccess.BREAK_GLASS
        )
        assert can_access_patient(session, people.alice, patient_id, now=grant.expires_at) is None


@pytest.mark.parametrize("who", ["admin", "auditor"])
def test_only_clinicians_break_glass(
    people: People,
    context: MakeContext,
    sessions: sessionmaker[Session],
    keyring: KeyRing,
    settings: Settings,
    who: str,
) -> None:
    patient_id = _patient(context, people)
    with sessions() as session:
        with pytest.raises(PermissionDeniedError, match=f"needs the role clinician.*is {who}"):
            grant_break_glass(session, keyring, settings, getattr(people, who), patient_id, REASON)
        assert _last_audit(session) == ("break_glass.grant", "denied", False)
        assert session.execute(sa.text("SELECT count(*) FROM break_glass_grants")).scalar() == 0


def test_require_role_allows_listed_roles_only(
    people: People, sessions: sessionmaker[Session]
) -> None:
    with sessions() as session:
        require_role(session, people.admin, "model.promote", Role.ADMIN)
        with pytest.raises(
            PermissionDeniedError,
            match=r"model\.promote needs the role admin; user 'alice' is clinician",
        ):
            require_role(session, people.alice, "model.promote", Role.ADMIN)
        assert _last_audit(session) == ("model.promote", "denied", False)
