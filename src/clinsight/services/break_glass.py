"""Break-glass use cases around the grant itself: the clinician's lookup of a patient off
their care team, the live grant behind the banner of a patient's pages, and the auditors'
list of grants. Opening a grant is `services.patients.open_break_glass`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from clinsight.security import records
from clinsight.security.access import can_access_patient, require_role
from clinsight.store.accounts import GrantRecord, list_grants, live_grant
from clinsight.store.actors import PatientAccess
from clinsight.store.repositories import StoreContext
from clinsight.store.roles import Role
from clinsight.store.tables import Patient, utcnow

__all__ = ["EmergencyLookup", "GrantPage", "emergency_access", "emergency_lookup", "grant_log"]


@dataclass(frozen=True)
class EmergencyLookup:
    """What a clinician learns of an MRN: whether a patient has it, and whether they may
    open the record already (care team or a live grant). No patient data."""

    patient_id: str | None
    accessible: bool


@dataclass(frozen=True)
class GrantPage:
    """Break-glass grants newest first, split at `now` into active and ended."""

    active: list[GrantRecord]
    ended: list[GrantRecord]
    now: datetime


def emergency_lookup(ctx: StoreContext, *, mrn: str = "", patient_id: str = "") -> EmergencyLookup:
    """Whether a patient has this MRN (or this record id, as a refusal names it) and
    whether the clinician may open it now. Committed (an MRN lookup is audited).

    Raises:
        PermissionDeniedError: the actor is not a clinician.
    """
    require_role(ctx.session, ctx.actor, "break_glass.lookup", Role.CLINICIAN)
    if mrn.strip():
        found = records.find_patient_id(ctx, mrn.strip())
    else:
        found = patient_id if ctx.session.get(Patient, patient_id) is not None else None
    access = None if found is None else can_access_patient(ctx.session, ctx.actor, found)
    ctx.session.commit()
    return EmergencyLookup(found, access is not None)


def emergency_access(ctx: StoreContext, patient_id: str) -> GrantRecord | None:
    """The actor's live break-glass grant when it is what opens this patient (not their
    care team), for the banner of the patient's pages; None otherwise."""
    if can_access_patient(ctx.session, ctx.actor, patient_id) is not PatientAccess.BREAK_GLASS:
        return None
    return live_grant(ctx.session, ctx.keyring, ctx.actor.user_id, patient_id)


def grant_log(ctx: StoreContext, *, limit: int = 100) -> GrantPage:
    """Recent break-glass grants, active first (auditors: who, which patient record, why,
    from when to when; no patient data). Committed (the read is audited).

    Raises:
        PermissionDeniedError: the actor is not an auditor.
    """
    require_role(ctx.session, ctx.actor, "break_glass.list", Role.AUDITOR)
    grants, now = list_grants(ctx.session, ctx.keyring, limit=limit), utcnow()
    ctx.audit("break_glass.list", "break_glass", details={"count": len(grants)})
    ctx.session.commit()
    return GrantPage(
        [g for g in grants if g.active_at(now)], [g for g in grants if not g.active_at(now)], now
    )
