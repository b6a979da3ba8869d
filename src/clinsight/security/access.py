"""Deny-by-default authorization: role checks and the object-level patient policy.

Policy (anything not listed is denied):

- clinician: patients on their care team, or with an unexpired break-glass grant
  they created with a reason (every access under it is flagged in the audit log);
- admin: users, care-team assignments and models, but no patient record: PHI
  needs a clinical relationship, and only clinicians can join a care team;
- auditor: the audit log only.

Every denial is written to the audit log and committed before the error is raised
(`store.audit.record_denial`), so a rollback by the caller cannot erase it. Nothing else
here commits: the service that runs the use case owns the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select, union
from sqlalchemy.orm import Session

from clinsight.config import Settings
from clinsight.errors import DataError, PermissionDeniedError, RecordNotFoundError
from clinsight.store import audit
from clinsight.store.actors import PatientAccess, Principal
from clinsight.store.crypto import KeyRing
from clinsight.store.roles import Role
from clinsight.store.studies import UploadPolicy
from clinsight.store.tables import BreakGlassGrant, CareTeam, Patient, new_id, utcnow

__all__ = [
    "MIN_BREAK_GLASS_REASON",
    "UPLOAD_POLICY",
    "BreakGlass",
    "accessible_patient_ids",
    "can_access_patient",
    "grant_break_glass",
    "patient_denial",
    "require_patient_access",
    "require_role",
]

MIN_BREAK_GLASS_REASON = 10


@dataclass(frozen=True)
class BreakGlass:
    """A break-glass grant just created."""

    id: str
    patient_id: str
    expires_at: datetime


def _deny(
    session: Session,
    principal: Principal,
    action: str,
    message: str,
    *,
    resource_type: str,
    patient_id: str | None = None,
) -> PermissionDeniedError:
    audit.record_denial(session, [_denial(principal, action, resource_type, patient_id)])
    return PermissionDeniedError(message)


def _denial(
    principal: Principal, action: str, resource_type: str, patient_id: str | None
) -> audit.AuditEvent:
    return audit.AuditEvent(
        action=action,
        resource_type=resource_type,
        outcome=audit.Outcome.DENIED,
        actor_id=principal.user_id,
        resource_id=patient_id,
        patient_id=patient_id,
        details={"role": str(principal.role)},
    )


def require_role(session: Session, principal: Principal, action: str, *allowed: Role) -> None:
    """Allow `action` only to the `allowed` roles; audit and refuse anyone else.

    Raises:
        PermissionDeniedError: the principal's role is not allowed (the denial is committed).
    """
    if principal.role in allowed:
        return
    roles = ", ".join(sorted(str(role) for role in allowed))
    raise _deny(
        session,
        principal,
        action,
        f"{action} needs the role {roles}; user {principal.username!r} is {principal.role}",
        resource_type="role",
    )


# Built once: the patient check runs on every request that opens a record.
_ON_CARE_TEAM = select(CareTeam.user_id).where(
    CareTeam.user_id == bindparam("user_id"), CareTeam.patient_id == bindparam("patient_id")
)
_LIVE_GRANT = select(BreakGlassGrant.id).where(
    BreakGlassGrant.user_id == bindparam("user_id"),
    BreakGlassGrant.patient_id == bindparam("patient_id"),
    BreakGlassGrant.expires_at > bindparam("now"),
)


def can_access_patient(
    session: Session, principal: Principal, patient_id: str, *, now: datetime | None = None
) -> PatientAccess | None:
    """The basis on which `principal` may open this patient's record, or None (denied)."""
    if principal.role is not Role.CLINICIAN:
        return None
    who = {"user_id": principal.user_id, "patient_id": patient_id}
    if session.execute(_ON_CARE_TEAM, who).first() is not None:
        return PatientAccess.CARE_TEAM
    grant = session.execute(_LIVE_GRANT, {**who, "now": now or utcnow()}).first()
    return PatientAccess.BREAK_GLASS if grant is not None else None


def patient_denial(
    principal: Principal, patient_id: str, action: str
) -> tuple[audit.AuditEvent, PermissionDeniedError]:
    """The audit entry and the error for refusing `action` on a patient (nothing written)."""
    hint = (
        "ask an administrator to add you to the care team, or in an emergency use break-glass "
        f"with a reason: in the browser at /break-glass?patient={patient_id}, through the API "
        f"with POST /api/v1/patients/{patient_id}/break-glass"
        if principal.role is Role.CLINICIAN
        else f"the {principal.role} role has no access to patient records"
    )
    message = f"user {principal.username!r} may not open patient {patient_id}: {hint}"
    url = f"/break-glass?patient={patient_id}" if principal.role is Role.CLINICIAN else None
    error = PermissionDeniedError(message, help_url=url)
    return _denial(principal, action, "patient", patient_id), error


def require_patient_access(
    session: Session,
    principal: Principal,
    patient_id: str,
    action: str,
    *,
    now: datetime | None = None,
) -> PatientAccess:
    """Allow `action` on a patient only under `can_access_patient`; audit and refuse otherwise.

    Raises:
        PermissionDeniedError: no care-team membership or live break-glass grant
            (the denial is committed).
    """
    access = can_access_patient(session, principal, patient_id, now=now)
    if access is not None:
        return access
    event, error = patient_denial(principal, patient_id, action)
    audit.record_denial(session, [event])
    raise error


UPLOAD_POLICY = UploadPolicy(access=can_access_patient, denial=patient_denial)
"""The patient policy, as the store's grouped upload writer applies it."""


def accessible_patient_ids(
    session: Session, principal: Principal, *, now: datetime | None = None
) -> set[str]:
    """Every patient `principal` may open now (empty for admins and auditors)."""
    if principal.role is not Role.CLINICIAN:
        return set()
    team = select(CareTeam.patient_id).where(CareTeam.user_id == principal.user_id)
    grants = select(BreakGlassGrant.patient_id).where(
        BreakGlassGrant.user_id == principal.user_id,
        BreakGlassGrant.expires_at > (now or utcnow()),
    )
    return set(session.execute(union(team, grants)).scalars())


def grant_break_glass(
    session: Session,
    keyring: KeyRing,
    settings: Settings,
    principal: Principal,
    patient_id: str,
    reason: str,
    *,
    minutes: int | None = None,
    now: datetime | None = None,
) -> BreakGlass:
    """Give a clinician emergency access to a patient for `minutes` (default and most:
    `settings.break_glass_minutes`).

    The reason is stored encrypted; the grant is flagged in the audit log. The caller
    commits.

    Raises:
        PermissionDeniedError: the principal is not a clinician (the denial is committed).
        DataError: the reason is shorter than `MIN_BREAK_GLASS_REASON` characters, or the
            duration is outside 1 to `settings.break_glass_minutes` minutes.
        RecordNotFoundError: no patient has this id.
    """
    require_role(session, principal, "break_glass.grant", Role.CLINICIAN)
    reason = reason.strip()
    if len(reason) < MIN_BREAK_GLASS_REASON:
        raise DataError(
            f"break-glass needs a reason of at least {MIN_BREAK_GLASS_REASON} characters "
            "saying why this emergency access is needed"
        )
    most = settings.break_glass_minutes
    minutes = most if minutes is None else minutes
    if not 1 <= minutes <= most:
        raise DataError(
            f"emergency access lasts 1 to {most} minutes; choose a duration in that range"
        )
    if session.get(Patient, patient_id) is None:
        raise RecordNotFoundError(f"no patient with id {patient_id}; check the id")
    now = now or utcnow()
    grant = BreakGlassGrant(
        id=new_id(),
        user_id=principal.user_id,
        patient_id=patient_id,
        created_at=now,
        expires_at=now + timedelta(minutes=minutes),
    )
    grant.reason_ct = keyring.encrypt_field(
        reason, table="break_glass_grants", column="reason_ct", row_id=grant.id
    )
    session.add(grant)
    audit.append(
        session,
        action="break_glass.grant",
        resource_type="break_glass",
        actor_id=principal.user_id,
        resource_id=grant.id,
        patient_id=patient_id,
        details={"minutes": minutes},
        break_glass=True,
        at=now,
    )
    return BreakGlass(id=grant.id, patient_id=patient_id, expires_at=grant.expires_at)
