"""Care-team administration by MRN and user name (admins): add, remove, list.

The admin names a patient by MRN only and sees no patient data: the MRN is matched by its
blind index and the patient is shown as its record reference. Each use case commits its
own work with its audit entries. The API, the web and `clinsight care-team` call these.
"""

from __future__ import annotations

from dataclasses import dataclass

from clinsight.errors import RecordNotFoundError
from clinsight.security import admin, records
from clinsight.security.access import require_role
from clinsight.services.users import account_id
from clinsight.store.accounts import CareTeamMember
from clinsight.store.repositories import StoreContext, lookup_patient_id
from clinsight.store.roles import Role

__all__ = ["CareTeam", "add_member", "care_team", "patient_by_mrn", "remove_member"]


@dataclass(frozen=True)
class CareTeam:
    """A patient's care team: the patient's record id (no patient data) and its members."""

    patient_id: str
    members: list[CareTeamMember]

    @property
    def reference(self) -> str:
        """The record reference the audit log uses for this patient."""
        return f"patient {self.patient_id[:8]}"


def patient_by_mrn(ctx: StoreContext, mrn: str, action: str) -> str:
    """The record id of the patient with this MRN, for an admin's care-team change.

    Raises:
        PermissionDeniedError: the actor is not an admin.
        RecordNotFoundError: no patient has this MRN.
    """
    require_role(ctx.session, ctx.actor, action, Role.ADMIN)
    found = lookup_patient_id(ctx, mrn.strip())
    if found is None:
        raise RecordNotFoundError(
            "no patient has this MRN; check it (a clinician registers patients)"
        )
    return found


def care_team(ctx: StoreContext, mrn: str) -> CareTeam:
    """The care team of the patient with this MRN. Committed (the read is audited).

    Raises:
        PermissionDeniedError: the actor is not an admin.
        RecordNotFoundError: no patient has this MRN.
    """
    patient_id = patient_by_mrn(ctx, mrn, "care_team.list")
    team = CareTeam(patient_id, admin.list_care_team(ctx, patient_id))
    ctx.session.commit()
    return team


def add_member(ctx: StoreContext, mrn: str, username: str) -> CareTeam:
    """Put the clinician `username` on the care team of the patient with this MRN
    (idempotent). Committed with its audit entry.

    Raises:
        PermissionDeniedError: the actor is not an admin.
        RecordNotFoundError: no such patient or account.
        DataError: the account is not an active clinician.
    """
    patient_id = patient_by_mrn(ctx, mrn, "care_team.assign")
    records.assign_care_team(ctx, account_id(ctx.session, username), patient_id)
    team = CareTeam(patient_id, admin.list_care_team(ctx, patient_id))
    ctx.session.commit()
    return team


def remove_member(ctx: StoreContext, mrn: str, username: str) -> CareTeam:
    """Take `username` off the care team of the patient with this MRN. Committed.

    Raises:
        PermissionDeniedError: the actor is not an admin.
        RecordNotFoundError: no such patient or account, or the account is not on the team.
    """
    patient_id = patient_by_mrn(ctx, mrn, "care_team.remove")
    if not admin.remove_care_team_member(ctx, account_id(ctx.session, username), patient_id):
        ctx.session.commit()  # the attempt stays audited
        raise RecordNotFoundError(f"{username!r} is not on this patient's care team")
    team = CareTeam(patient_id, admin.list_care_team(ctx, patient_id))
    ctx.session.commit()
    return team
