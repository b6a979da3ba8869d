"""Who acts on the store and on what basis: plain types the store records, nothing decided.

The access policy that produces them lives in `security.access`, above the store; the
store only writes the actor's id and the basis (care team or break-glass) to its rows
and audit entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from clinsight.store.roles import Role

__all__ = ["PatientAccess", "Principal"]


@dataclass(frozen=True)
class Principal:
    """An authenticated user as the policy sees them."""

    user_id: str
    username: str
    role: Role


class PatientAccess(StrEnum):
    """Why a clinician may open a patient's record."""

    CARE_TEAM = "care_team"
    BREAK_GLASS = "break_glass"
