"""Typed store operations on users, patients, care teams and the audit log.

PHI goes in and out only through here, `store.notes` and `store.studies`. Every function
encrypts or decrypts PHI with the key ring and appends an audit entry; none decides who
may act and none commits. The access checks run first, in `security.records`, which
calls these; the service running the use case commits. Records come back as frozen
dataclasses with plaintext, never as ORM rows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from clinsight.errors import DataError, DuplicateRecordError, RecordNotFoundError
from clinsight.store import audit
from clinsight.store.actors import Principal
from clinsight.store.crypto import KeyRing
from clinsight.store.db import flush_unique
from clinsight.store.roles import Role
from clinsight.store.tables import CareTeam, Patient, User, new_id

__all__ = [
    "SEXES",
    "PatientPage",
    "PatientRecord",
    "StoreContext",
    "UserRecord",
    "add_patient",
    "add_to_care_team",
    "add_user",
    "audit_labels",
    "decrypt_patients",
    "lookup_patient_id",
    "read_audit",
    "read_patient",
    "read_user_by_name",
    "search_patients",
    "user_id_by_name",
]

SEXES = frozenset({"female", "male", "other", "unknown"})
MAX_RESULTS = 100


@dataclass(frozen=True)
class StoreContext:
    """One unit of work: the session, the key ring, the files folder and who is acting;
    `audit_details` go into each of its audit entries (e.g. how a command-line actor is
    known)."""

    session: Session
    keyring: KeyRing
    files_dir: Path
    actor: Principal
    audit_details: Mapping[str, audit.Scalar] = field(default_factory=dict)

    def audit(self, action: str, resource_type: str, **fields: Any) -> None:
        """Append an audit entry with this actor."""
        if self.audit_details:
            fields["details"] = {**self.audit_details, **(fields.get("details") or {})}
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


def add_user(
    session: Session, *, username: str, password_hash: str, role: Role, actor: Principal | None
) -> UserRecord:
    """Record an account whose name is normalised and whose password is already hashed.

    Raises:
        DuplicateRecordError: the username is taken.
    """
    name = username
    taken = f"username {name!r} is taken; choose another"
    if session.execute(select(User.id).where(User.username == name)).first() is not None:
        raise DuplicateRecordError(taken)
    user = User(
        id=new_id(),
        username=name,
        role=str(role),
        password_hash=password_hash,
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


def decrypt_patients(ctx: StoreContext, patient_ids: set[str]) -> dict[str, PatientRecord]:
    """The records of these patients by id, decrypted (the caller audits what it shows)."""
    if not patient_ids:
        return {}
    rows = ctx.session.execute(select(Patient).where(Patient.id.in_(patient_ids))).scalars()
    return {row.id: _decrypt_patient(ctx.keyring, row) for row in rows}


def add_patient(
    ctx: StoreContext, *, mrn: str, name: str, birth_date: date, sex: str
) -> PatientRecord:
    """Register a patient; the creator joins the care team.

    Raises:
        DataError: empty MRN or name, a sex other than female, male, other, unknown, or a
            birth date in the future.
        DuplicateRecordError: a patient with this MRN exists.
    """
    mrn, name, sex = mrn.strip(), " ".join(name.split()), sex.strip().lower()
    if not mrn or not name or len(mrn) > 64:
        raise DataError("a patient needs an MRN (1-64 characters) and a name")
    if sex not in SEXES:
        raise DataError(f"choose the patient's sex: one of {', '.join(sorted(SEXES))}")
    if birth_date > date.today():
        raise DataError(f"the birth date {birth_date.isoformat()} is in the future; check it")

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


def read_user_by_name(session: Session, username: str) -> UserRecord | None:
    """The account whose stored (normalised) username is `username`, or None."""
    row = session.execute(
        select(User.id, User.username, User.role, User.active).where(User.username == username)
    ).first()
    return None if row is None else UserRecord(row.id, row.username, Role(row.role), row.active)


def read_patient(ctx: StoreContext, patient_id: str, *, break_glass: bool) -> PatientRecord:
    """A patient's record; `break_glass` flags the read's audit entry.

    Raises:
        RecordNotFoundError: no patient has this id.
    """
    row = ctx.session.get(Patient, patient_id)
    if row is None:
        raise RecordNotFoundError(f"no patient with id {patient_id}")
    ctx.audit(
        "patient.read",
        "patient",
        resource_id=patient_id,
        patient_id=patient_id,
        break_glass=break_glass,
    )
    return _decrypt_patient(ctx.keyring, row)


def lookup_patient_id(ctx: StoreContext, mrn: str) -> str | None:
    """The id of the patient with this MRN, without PHI (e.g. before break-glass)."""
    index = ctx.keyring.blind_index(mrn)
    found = ctx.session.execute(select(Patient.id).where(Patient.mrn_index == index)).scalar()
    ctx.audit("patient.lookup", "patient", patient_id=found, details={"found": found is not None})
    return found


@dataclass(frozen=True)
class PatientPage:
    """One page of a patient search: its records, and how many matched in all."""

    records: list[PatientRecord]
    total: int
    offset: int


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders the numbers inside a text by value ("Patient 2" before
    "Patient 10"), case-insensitively."""
    parts = re.split(r"(\d+)", text.casefold())
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts if p)


def search_patients(
    ctx: StoreContext, allowed: set[str], query: str = "", *, limit: int = 100, offset: int = 0
) -> PatientPage:
    """The `allowed` patients whose MRN or name contains `query` (case-insensitive), in
    natural order of name, one page of at most `limit` from `offset`.

    Only the `allowed` patients are decrypted and searched; each returned patient gets an
    audit entry.
    """
    rows = ctx.session.execute(select(Patient).where(Patient.id.in_(allowed))).scalars()
    needle = " ".join(query.split()).casefold()
    matches = []
    for row in rows:
        record = _decrypt_patient(ctx.keyring, row)
        if not needle or needle in record.mrn.casefold() or needle in record.name.casefold():
            matches.append(record)
    matches.sort(key=lambda record: (natural_key(record.name), natural_key(record.mrn)))
    offset = max(0, offset)
    page = matches[offset : offset + max(1, min(limit, MAX_RESULTS))]
    for record in page:
        ctx.audit("patient.list", "patient", resource_id=record.id, patient_id=record.id)
    return PatientPage(page, len(matches), offset)


def add_to_care_team(ctx: StoreContext, user_id: str, patient_id: str) -> None:
    """Add a clinician to a patient's care team (idempotent).

    Raises:
        RecordNotFoundError: no such user or patient.
        DataError: the user is not an active clinician.
    """
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


def read_audit(
    ctx: StoreContext,
    *,
    limit: int = 100,
    before_seq: int | None = None,
    patient_id: str | None = None,
    where: audit.AuditFilter | None = None,
    cap: int = 100,
    action: str = "audit.read",
) -> list[audit.AuditEntry]:
    """Audit entries newest first, at most `limit` (capped at `cap`); the read is itself
    audited as `action`, with the filter used."""
    where = where or audit.AuditFilter(patient_id=patient_id)
    entries = audit.list_entries(
        ctx.session, limit=limit, before_seq=before_seq, patient_id=patient_id, where=where,
        cap=cap,
    )  # fmt: skip
    asked = {k: str(v) for k, v in vars(where).items() if v is not None and k != "patient_id"}
    ctx.audit(
        action, "audit", patient_id=where.patient_id, details={"count": len(entries), **asked}
    )
    return entries


def audit_labels(ctx: StoreContext, entries: list[audit.AuditEntry]) -> dict[str, str]:
    """Readable names for the users that `entries` name (their login names), and a stable
    pseudonymous reference for each patient ("patient 3f2a9c1e"): the audit role sees who
    did what, never patient data; a clinician on the care team opens the patient by id."""
    user_ids = {e.actor_id for e in entries if e.actor_id}
    user_ids |= {e.resource_id for e in entries if e.resource_type == "user" and e.resource_id}
    labels: dict[str, str] = {e.patient_id: f"patient {e.patient_id[:8]}"
                              for e in entries if e.patient_id}  # fmt: skip
    if user_ids:
        rows = ctx.session.execute(select(User.id, User.username).where(User.id.in_(user_ids)))
        labels.update({row.id: row.username for row in rows})
    return labels


def user_id_by_name(session: Session, username: str) -> str | None:
    """The id of the account whose stored (normalised) username is `username`, or None."""
    found: str | None = session.execute(select(User.id).where(User.username == username)).scalar()
    return found
