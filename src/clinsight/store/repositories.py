"""Typed store operations on users, patients, care teams and the audit log.

PHI goes in and out only through here and `store.studies`. Every function checks
the access policy (`security.access`), encrypts or decrypts PHI with the key ring,
and appends an audit entry; the caller commits. Records come back as frozen
dataclasses with plaintext, never as ORM rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from clinsight.config import Settings
from clinsight.errors import DataError, DuplicateRecordError, RecordNotFoundError
from clinsight.security.access import (
    PatientAccess,
    Principal,
    accessible_patient_ids,
    require_patient_access,
    require_role,
)
from clinsight.security.passwords import check_new_password, hash_password, normalise_username
from clinsight.store import audit
from clinsight.store.crypto import KeyRing
from clinsight.store.db import flush_unique
from clinsight.store.tables import CareTeam, Patient, Role, User, new_id

__all__ = [
    "SEXES",
    "PatientRecord",
    "StoreContext",
    "UserRecord",
    "assign_care_team",
    "create_patient",
    "create_user",
    "find_patient_id",
    "find_user",
    "get_patient",
    "list_audit",
    "search_patients",
]

SEXES = frozenset({"female", "male", "other", "unknown"})
MAX_RESULTS = 100


@dataclass(frozen=True)
class StoreContext:
    """One unit of work: the session, the key ring, the files folder and who is acting."""

    session: Session
    keyring: KeyRing
    files_dir: Path
    actor: Principal

    def audit(self, action: str, resource_type: str, **fields: Any) -> None:
        """Append an audit entry with this actor."""
        audit.append(
            self.session,
            action=action,
            resource_type=resource_type,
            actor_id=self.actor.user_id,
            **fields,
        )


@dataclass(frozen=True)
class UserRecord:
    """An account, without its password hash."""

    id: str
    username: str
    role: Role
    active: bool


@dataclass(frozen=True)
class PatientRecord:
    """A patient's decrypted identifiers and demographics."""

    id: str
    mrn: str
    name: str
    birth_date: date
    sex: str
    created_at: datetime


def find_user(session: Session, username: str) -> UserRecord | None:
    """The account named `username` (compared as at login), or None."""
    row = session.execute(
        select(User.id, User.username, User.role, User.active).where(
            User.username == normalise_username(username)
        )
    ).first()
    return None if row is None else UserRecord(row.id, row.username, Role(row.role), row.active)


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
    name = normalise_username(username)
    taken = f"username {name!r} is taken; choose another"
    if session.execute(select(User.id).where(User.username == name)).first() is not None:
        raise DuplicateRecordError(taken)
    user = User(
        id=new_id(),
        username=name,
        role=str(role),
        password_hash=hash_password(password, settings),
        active=True,
        failed_logins=0,
    )
    session.add(user)
    flush_unique(session, taken)
    audit.append(
        session,
        action="user.create",
        resource_type="user",
        actor_id=actor.user_id if actor else None,
        resource_id=user.id,
        details={"role": str(role)},
    )
    return UserRecord(id=user.id, username=name, role=role, active=True)


def _decrypt_patient(keyring: KeyRing, row: Patient) -> PatientRecord:
    def field(column: str) -> str:
        token = getattr(row, column)
        return keyring.decrypt_field(token, table="patients", column=column, row_id=row.id)

    return PatientRecord(
        id=row.id,
        mrn=field("mrn_ct"),
        name=field("name_ct"),
        birth_date=date.fromisoformat(field("birth_date_ct")),
        sex=field("sex_ct"),
        created_at=row.created_at,
    )


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
    mrn, name, sex = mrn.strip(), " ".join(name.split()), sex.strip().lower()
    if not mrn or not name or len(mrn) > 64:
        raise DataError("a patient needs an MRN (1-64 characters) and a name")
    if sex not in SEXES:
        raise DataError(f"sex must be one of {', '.join(sorted(SEXES))}, not {sex!r}")
    index = ctx.keyring.blind_index(mrn)
    exists = "a patient with this MRN exists; search for it instead"
    if ctx.session.execute(select(Patient.id).where(Patient.mrn_index == index)).first():
        raise DuplicateRecordError(exists)
    patient = Patient(id=new_id(), mrn_index=index, created_by=ctx.actor.user_id)
    values = {
        "mrn_ct": mrn,
        "name_ct": name,
        "birth_date_ct": birth_date.isoformat(),
        "sex_ct": sex,
    }
    for column, plain in values.items():
        token = ctx.keyring.encrypt_field(plain, table="patients", column=column, row_id=patient.id)
        setattr(patient, column, token)
    ctx.session.add(patient)
    flush_unique(ctx.session, exists)  # no ORM relationships: the row must exist first
    ctx.session.add(CareTeam(user_id=ctx.actor.user_id, patient_id=patient.id))
    ctx.session.flush()
    ctx.audit("patient.create", "patient", resource_id=patient.id, patient_id=patient.id)
    return _decrypt_patient(ctx.keyring, patient)


def get_patient(ctx: StoreContext, patient_id: str) -> PatientRecord:
    """A patient's record, if the actor may open it.

    Raises:
        PermissionDeniedError: the access policy denies it (the denial is committed).
    """
    access = require_patient_access(ctx.session, ctx.actor, patient_id, "patient.read")
    row = ctx.session.get(Patient, patient_id)
    if row is None:
        raise RecordNotFoundError(f"no patient with id {patient_id}")
    ctx.audit(
        "patient.read",
        "patient",
        resource_id=patient_id,
        patient_id=patient_id,
        break_glass=access is PatientAccess.BREAK_GLASS,
    )
    return _decrypt_patient(ctx.keyring, row)


def find_patient_id(ctx: StoreContext, mrn: str) -> str | None:
    """The id of the patient with this MRN, without PHI (clinicians; e.g. before break-glass).

    Raises:
        PermissionDeniedError: the actor is not a clinician.
    """
    require_role(ctx.session, ctx.actor, "patient.lookup", Role.CLINICIAN)
    index = ctx.keyring.blind_index(mrn)
    found = ctx.session.execute(select(Patient.id).where(Patient.mrn_index == index)).scalar()
    ctx.audit("patient.lookup", "patient", patient_id=found, details={"found": found is not None})
    return found


def search_patients(ctx: StoreContext, query: str = "", *, limit: int = 100) -> list[PatientRecord]:
    """The actor's patients whose MRN equals `query` or whose name contains it, by name.

    Only the care team and break-glass patients are decrypted and searched; each
    returned patient gets an audit entry.

    Raises:
        PermissionDeniedError: the actor is not a clinician.
    """
    require_role(ctx.session, ctx.actor, "patient.search", Role.CLINICIAN)
    allowed = accessible_patient_ids(ctx.session, ctx.actor)
    rows = ctx.session.execute(select(Patient).where(Patient.id.in_(allowed))).scalars()
    needle, index = query.strip().casefold(), ctx.keyring.blind_index(query)
    matches = []
    for row in rows:
        record = _decrypt_patient(ctx.keyring, row)
        if not needle or row.mrn_index == index or needle in record.name.casefold():
            matches.append(record)
    matches.sort(key=lambda record: (record.name.casefold(), record.id))
    matches = matches[: max(1, min(limit, MAX_RESULTS))]
    for record in matches:
        ctx.audit("patient.list", "patient", resource_id=record.id, patient_id=record.id)
    return matches


def assign_care_team(ctx: StoreContext, user_id: str, patient_id: str) -> None:
    """Add a clinician to a patient's care team (admins only; idempotent).

    Raises:
        PermissionDeniedError: the actor is not an admin.
        RecordNotFoundError: no such user or patient.
        DataError: the user is not an active clinician.
    """
    require_role(ctx.session, ctx.actor, "care_team.assign", Role.ADMIN)
    user = ctx.session.get(User, user_id)
    if user is None or ctx.session.get(Patient, patient_id) is None:
        raise RecordNotFoundError("no such user or patient; check both ids")
    if user.role != Role.CLINICIAN or not user.active:
        raise DataError(f"only active clinicians join care teams; {user.username!r} is not one")
    if ctx.session.get(CareTeam, (user_id, patient_id)) is None:
        ctx.session.add(
            CareTeam(user_id=user_id, patient_id=patient_id, assigned_by=ctx.actor.user_id)
        )
    ctx.audit("care_team.assign", "care_team", resource_id=user_id, patient_id=patient_id)


def list_audit(
    ctx: StoreContext,
    *,
    limit: int = 100,
    before_seq: int | None = None,
    patient_id: str | None = None,
) -> list[audit.AuditEntry]:
    """Audit entries newest first, at most 100 (auditors only; the read is itself audited).

    Raises:
        PermissionDeniedError: the actor is not an auditor.
    """
    require_role(ctx.session, ctx.actor, "audit.read", Role.AUDITOR)
    entries = audit.list_entries(
        ctx.session, limit=limit, before_seq=before_seq, patient_id=patient_id
    )
    ctx.audit("audit.read", "audit", patient_id=patient_id, details={"count": len(entries)})
    return entries
