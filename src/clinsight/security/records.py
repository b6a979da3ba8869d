"""Accounts, patients, care teams and the audit log under the access policy.

Each function decides first (`security.access`: a refusal is audited and committed) and
then calls the store, which only encrypts, writes and audits. None commits: the service
running the use case does.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy.orm import Session

from clinsight.config import Settings
from clinsight.security.access import accessible_patient_ids, require_patient_access, require_role
from clinsight.security.passwords import check_new_password, hash_password, normalise_username
from clinsight.store import audit, repositories
from clinsight.store.actors import PatientAccess, Principal
from clinsight.store.repositories import PatientRecord, StoreContext, UserRecord
from clinsight.store.roles import Role

__all__ = [
    "assign_care_team",
    "audit_user_id",
    "create_patient",
    "create_user",
    "find_patient_id",
    "find_user",
    "get_patient",
    "list_audit",
    "search_patients",
]


def create_user(
    session: Session,
    settings: Settings,
    *,
    username: str,
    password: str,
    role: Role,
    actor: Principal | None,
) -> UserRecord:
    """Create an account; `actor` must be an admin (None only for the first-run bootstrap).

    Raises:
        PermissionDeniedError: the actor is not an admin.
        DataError: the username or password breaks the account rules.
        DuplicateRecordError: the username is taken.
    """
    if actor is not None:
        require_role(session, actor, "user.create", Role.ADMIN)
    check_new_password(username, password)
    return repositories.add_user(
        session,
        username=normalise_username(username),
        password_hash=hash_password(password, settings),
        role=role,
        actor=actor,
    )


def find_user(session: Session, username: str) -> UserRecord | None:
    """The account named `username`, compared as at login (normalised), or None."""
    return repositories.read_user_by_name(session, normalise_username(username))


def create_patient(
    ctx: StoreContext, *, mrn: str, name: str, birth_date: date, sex: str
) -> PatientRecord:
    """Register a patient (clinicians only); the creator joins the care team.

    Raises:
        PermissionDeniedError: the actor is not a clinician.
        DataError: empty MRN or name, or a sex other than female, male, other, unknown.
        DuplicateRecordError: a patient with this MRN exists.
    """
    require_role(ctx.session, ctx.actor, "patient.create", Role.CLINICIAN)
    return repositories.add_patient(ctx, mrn=mrn, name=name, birth_date=birth_date, sex=sex)


def get_patient(ctx: StoreContext, patient_id: str) -> PatientRecord:
    """A patient's record, if the actor may open it.

    Raises:
        PermissionDeniedError: the access policy denies it (the denial is committed).
        RecordNotFoundError: no patient has this id.
    """
    access = require_patient_access(ctx.session, ctx.actor, patient_id, "patient.read")
    return repositories.read_patient(
        ctx, patient_id, break_glass=access is PatientAccess.BREAK_GLASS
    )


def find_patient_id(ctx: StoreContext, mrn: str) -> str | None:
    """The id of the patient with this MRN, without PHI (clinicians; e.g. before break-glass).

    Raises:
        PermissionDeniedError: the actor is not a clinician.
    """
    require_role(ctx.session, ctx.actor, "patient.lookup", Role.CLINICIAN)
    return repositories.lookup_patient_id(ctx, mrn)


def search_patients(
    ctx: StoreContext, query: str = "", *, limit: int = 100, offset: int = 0
) -> repositories.PatientPage:
    """One page of the actor's patients (care team and break-glass) whose MRN or name
    contains `query`, in natural order of name; each returned patient gets an audit entry.

    Raises:
        PermissionDeniedError: the actor is not a clinician.
    """
    require_role(ctx.session, ctx.actor, "patient.search", Role.CLINICIAN)
    allowed = accessible_patient_ids(ctx.session, ctx.actor)
    return repositories.search_patients(ctx, allowed, query, limit=limit, offset=offset)


def assign_care_team(ctx: StoreContext, user_id: str, patient_id: str) -> None:
    """Add a clinician to a patient's care team (admins only; idempotent).

    Raises:
        PermissionDeniedError: the actor is not an admin.
        RecordNotFoundError: no such user or patient.
        DataError: the user is not an active clinician.
    """
    require_role(ctx.session, ctx.actor, "care_team.assign", Role.ADMIN)
    repositories.add_to_care_team(ctx, user_id, patient_id)


def list_audit(
    ctx: StoreContext,
    *,
    limit: int = 100,
    before_seq: int | None = None,
    patient_id: str | None = None,
    where: audit.AuditFilter | None = None,
    cap: int = 100,
    action: str = "audit.read",
) -> list[audit.AuditEntry]:
    """Audit entries newest first, at most `limit` (auditors only; the read is itself
    audited as `action`).

    Raises:
        PermissionDeniedError: the actor is not an auditor.
    """
    require_role(ctx.session, ctx.actor, action, Role.AUDITOR)
    return repositories.read_audit(
        ctx, limit=limit, before_seq=before_seq, patient_id=patient_id, where=where, cap=cap,
        action=action,
    )  # fmt: skip


def audit_user_id(ctx: StoreContext, username: str) -> str | None:
    """The id of the account an auditor names (normalised like a login), or None."""
    return repositories.user_id_by_name(ctx.session, normalise_username(username))
