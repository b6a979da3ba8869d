"""Store operations of administration: account state, care-team membership and
break-glass grants, each change with its audit entry. Nothing here decides who may act
(`security.admin` does) and nothing commits (the service does)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from clinsight.errors import RecordNotFoundError
from clinsight.store.crypto import KeyRing
from clinsight.store.repositories import StoreContext
from clinsight.store.roles import Role
from clinsight.store.tables import BreakGlassGrant, CareTeam, User, utcnow

__all__ = [
    "Account",
    "CareTeamMember",
    "GrantRecord",
    "account_of",
    "active_admins",
    "care_team_members",
    "list_accounts",
    "list_grants",
    "live_grant",
    "read_account",
    "remove_from_care_team",
    "usernames",
]


@dataclass(frozen=True)
class Account:
    """An account as an administrator sees it (never its password hash)."""

    id: str
    username: str
    role: Role
    active: bool
    locked: bool
    created_at: datetime


@dataclass(frozen=True)
class CareTeamMember:
    """A clinician on a patient's care team."""

    user_id: str
    username: str
    assigned_at: datetime


@dataclass(frozen=True)
class GrantRecord:
    """A break-glass grant with its decrypted reason."""

    id: str
    user_id: str
    username: str
    patient_id: str
    reason: str
    created_at: datetime
    expires_at: datetime

    def active_at(self, now: datetime) -> bool:
        """Whether the grant still opens the patient at `now`."""
        return now < self.expires_at


def _account(user: User, now: datetime) -> Account:
    locked = user.locked_until is not None and user.locked_until > now
    return Account(user.id, user.username, Role(user.role), user.active, locked, user.created_at)


def list_accounts(
    session: Session, *, limit: int = 100, now: datetime | None = None
) -> list[Account]:
    """Accounts by username, at most `limit` (capped at 500)."""
    rows = session.execute(select(User).order_by(User.username).limit(max(1, min(limit, 500))))
    return [_account(user, now or utcnow()) for user in rows.scalars()]


def account_of(session: Session, user_id: str) -> Account:
    """The account with this id as an administrator sees it.

    Raises:
        RecordNotFoundError: no account has this id.
    """
    return _account(read_account(session, user_id), utcnow())


def read_account(session: Session, user_id: str) -> User:
    """The account row with this id (for a change in this transaction).

    Raises:
        RecordNotFoundError: no account has this id.
    """
    user = session.get(User, user_id, populate_existing=True)
    if user is None:
        raise RecordNotFoundError(f"no account with id {user_id}; list the users to find it")
    return user


def active_admins(session: Session) -> int:
    """How many active admin accounts there are."""
    count = select(func.count()).select_from(User).where(User.role == str(Role.ADMIN), User.active)
    return int(session.execute(count).scalar_one())


def care_team_members(session: Session, patient_id: str) -> list[CareTeamMember]:
    """The clinicians on a patient's care team, by username."""
    rows = session.execute(
        select(User.id, User.username, CareTeam.assigned_at)
        .join(CareTeam, CareTeam.user_id == User.id)
        .where(CareTeam.patient_id == patient_id)
        .order_by(User.username)
    )
    return [CareTeamMember(r.id, r.username, r.assigned_at) for r in rows]


def remove_from_care_team(ctx: StoreContext, user_id: str, patient_id: str) -> bool:
    """Take a clinician off a patient's care team; False when they were not on it. Audited."""
    member = ctx.session.get(CareTeam, (user_id, patient_id))
    if member is not None:
        ctx.session.delete(member)
        ctx.session.flush()
    ctx.audit(
        "care_team.remove",
        "care_team",
        resource_id=user_id,
        patient_id=patient_id,
        details={"was_member": member is not None},
    )
    return member is not None


def _grant(keyring: KeyRing, row: BreakGlassGrant, username: str) -> GrantRecord:
    reason = keyring.decrypt_field(
        row.reason_ct, table="break_glass_grants", column="reason_ct", row_id=row.id
    )
    return GrantRecord(
        row.id, row.user_id, username, row.patient_id, reason, row.created_at, row.expires_at
    )


def list_grants(session: Session, keyring: KeyRing, *, limit: int = 100) -> list[GrantRecord]:
    """Break-glass grants, newest first, at most `limit` (capped at 500)."""
    rows = session.execute(
        select(BreakGlassGrant, User.username)
        .join(User, User.id == BreakGlassGrant.user_id)
        .order_by(BreakGlassGrant.created_at.desc())
        .limit(max(1, min(limit, 500)))
    )
    return [_grant(keyring, row, username) for row, username in rows]


def live_grant(
    session: Session,
    keyring: KeyRing,
    user_id: str,
    patient_id: str,
    *,
    now: datetime | None = None,
) -> GrantRecord | None:
    """The user's unexpired grant on this patient that lasts longest, or None."""
    found = session.execute(
        select(BreakGlassGrant, User.username)
        .join(User, User.id == BreakGlassGrant.user_id)
        .where(
            BreakGlassGrant.user_id == user_id,
            BreakGlassGrant.patient_id == patient_id,
            BreakGlassGrant.expires_at > (now or utcnow()),
        )
        .order_by(BreakGlassGrant.expires_at.desc())
        .limit(1)
    ).first()
    return None if found is None else _grant(keyring, found[0], found[1])


def usernames(session: Session, user_ids: set[str]) -> dict[str, str]:
    """The login names of these accounts by id (no PHI: who wrote or reviewed what)."""
    if not user_ids:
        return {}
    rows = session.execute(select(User.id, User.username).where(User.id.in_(user_ids)))
    return {row.id: row.username for row in rows}
