"""Care teams by MRN and user name (admins; no patient data), and the auditors' list of
break-glass grants."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from clinsight.api.admin_schemas import CareTeamChangeIn, CareTeamOut, GrantOut
from clinsight.api.deps import Admin, Auditor, StoreCtx
from clinsight.services.break_glass import grant_log
from clinsight.services.care_teams import CareTeam, add_member, care_team, remove_member

__all__ = ["router"]

router = APIRouter(tags=["care teams"])


def _out(team: CareTeam) -> CareTeamOut:
    return CareTeamOut.model_validate(team)


@router.get("/care-teams", response_model=CareTeamOut)
def members(
    user: Admin, ctx: StoreCtx, mrn: Annotated[str, Query(min_length=1, max_length=64)]
) -> CareTeamOut:
    """The care team of the patient with this MRN."""
    del user
    return _out(care_team(ctx, mrn))


@router.post("/care-teams/add", response_model=CareTeamOut)
def add(body: CareTeamChangeIn, user: Admin, ctx: StoreCtx) -> CareTeamOut:
    """Put a clinician (by user name) on a patient's care team (by MRN); idempotent."""
    del user
    return _out(add_member(ctx, body.mrn, body.username))


@router.post("/care-teams/remove", response_model=CareTeamOut)
def remove(body: CareTeamChangeIn, user: Admin, ctx: StoreCtx) -> CareTeamOut:
    """Take a clinician off a patient's care team."""
    del user
    return _out(remove_member(ctx, body.mrn, body.username))


@router.get("/audit/break-glass", response_model=list[GrantOut])
def grants(
    user: Auditor, ctx: StoreCtx, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> list[GrantOut]:
    """Break-glass grants, active first then ended, newest first: who, which patient
    record, why, from when to when."""
    del user
    page = grant_log(ctx, limit=limit)
    return [
        GrantOut(**vars(g), active=active)
        for active, found in ((True, page.active), (False, page.ended))
        for g in found
    ]
