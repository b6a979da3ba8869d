"""Request and response bodies of administration: accounts, care teams, break-glass grants."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from clinsight.store.roles import Role

__all__ = [
    "AccountOut",
    "CareTeamChangeIn",
    "CareTeamMemberOut",
    "CareTeamOut",
    "GrantOut",
    "PasswordResetOut",
    "RoleIn",
]


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class AccountOut(_Out):
    """An account with its state (never its password hash)."""

    id: str
    username: str
    role: Role
    active: bool
    locked: bool
    created_at: datetime


class RoleIn(BaseModel):
    """The account's new role."""

    role: Role


class PasswordResetOut(BaseModel):
    """The reset account and its temporary password: shown this once, never stored."""

    account: AccountOut
    temporary_password: str


class CareTeamChangeIn(BaseModel):
    """A clinician (by user name) and a patient (by MRN) for a care-team change."""

    mrn: str = Field(min_length=1, max_length=64)
    username: str = Field(min_length=3, max_length=64)


class CareTeamMemberOut(_Out):
    """A clinician on a care team."""

    user_id: str
    username: str
    assigned_at: datetime


class CareTeamOut(_Out):
    """A patient's care team: the record id and reference (no patient data), the members."""

    patient_id: str
    reference: str
    members: list[CareTeamMemberOut]


class GrantOut(_Out):
    """A break-glass grant as the auditors see it: who, which patient record, why, when."""

    id: str
    user_id: str
    username: str
    patient_id: str
    reason: str
    created_at: datetime
    expires_at: datetime
    active: bool
