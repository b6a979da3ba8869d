"""Administration under the policy: accounts (list, disable, enable, password reset, role)
and care teams (remove, list), for admins only.

An admin may not disable or demote their own account, nor the last active admin: the
refusal is audited and committed (like every denial) before it is raised. Disabling an
account, resetting its password or changing its role ends its sessions at once. Nothing
here commits otherwise: the service does.
"""

from __future__ import annotations

import secrets

from sqlalchemy.orm import Session

from clinsight.config import Settings
from clinsight.errors import PermissionDeniedError
from clinsight.security.access import require_role
from clinsight.security.passwords import check_new_password, hash_password
from clinsight.security.tokens import end_user_sessions
from clinsight.store import accounts, audit
from clinsight.store.accounts import Account, CareTeamMember
from clinsight.store.actors import Principal
from clinsight.store.repositories import StoreContext
from clinsight.store.roles import Role
from clinsight.store.tables import User

__all__ = [
    "change_role",
    "list_accounts",
    "list_care_team",
    "remove_care_team_member",
    "reset_password",
    "set_active",
    "temporary_password",
]


def _refuse(session: Session, actor: Principal, action: str, user_id: str, message: str) -> None:
    event = audit.AuditEvent(
        action=action,
        resource_type="user",
        outcome=audit.Outcome.DENIED,
        actor_id=actor.user_id,
        resource_id=user_id,
        details={"role": str(actor.role)},
    )
    audit.record_denial(session, [event])
    raise PermissionDeniedError(message)


def _keep_an_admin(session: Session, actor: Principal, action: str, user: User, what: str) -> None:
    """Refuse to `what` the actor's own account or the last active admin."""
    if user.id == actor.user_id:
        _refuse(
            session,
            actor,
            action,
            user.id,
            f"you may not {what} your own account; ask another admin",
        )
    if user.role == Role.ADMIN and user.active and accounts.active_admins(session) <= 1:
        _refuse(
            session,
            actor,
            action,
            user.id,
            f"{user.username!r} is the last active admin; make another admin first, "
            f"then {what} this one",
        )


def list_accounts(ctx: StoreContext, *, limit: int = 100) -> list[Account]:
    """Accounts by username with their state (admins only).

    Raises:
        PermissionDeniedError: the actor is not an admin.
    """
    require_role(ctx.session, ctx.actor, "user.list", Role.ADMIN)
    return accounts.list_accounts(ctx.session, limit=limit)


def set_active(ctx: StoreContext, user_id: str, *, active: bool) -> Account:
    """Disable an account (its sessions end now) or enable it again. Audited.

    Raises:
        PermissionDeniedError: the actor is not an admin, or disables themselves or the
            last active admin (the refusal is committed).
        RecordNotFoundError: no such account.
    """
    session, actor = ctx.session, ctx.actor
    action = "user.enable" if active else "user.disable"
    require_role(session, actor, action, Role.ADMIN)
    user = accounts.read_account(session, user_id)
    if not active:
        _keep_an_admin(session, actor, action, user, "disable")
    user.active = active
    ended = 0 if active else end_user_sessions(session, user.id, reason="account_disabled")
    ctx.audit(action, "user", resource_id=user.id, details={"sessions_ended": ended})
    session.flush()
    return accounts.account_of(session, user.id)


def temporary_password() -> str:
    """A random temporary password (20 URL-safe characters, about 120 bits)."""
    return secrets.token_urlsafe(15)


def reset_password(ctx: StoreContext, settings: Settings, user_id: str) -> str:
    """Give an account a new temporary password (returned, shown once), clear its lockout
    and end its sessions. Audited (without the password).

    Raises:
        PermissionDeniedError: the actor is not an admin.
        RecordNotFoundError: no such account.
    """
    session = ctx.session
    require_role(session, ctx.actor, "user.reset_password", Role.ADMIN)
    user = accounts.read_account(session, user_id)
    password = temporary_password()
    check_new_password(user.username, password)
    user.password_hash = hash_password(password, settings)
    user.failed_logins, user.failure_window_start, user.locked_until = 0, None, None
    ended = end_user_sessions(session, user.id, reason="password_reset")
    ctx.audit("user.reset_password", "user", resource_id=user.id,
              details={"sessions_ended": ended})  # fmt: skip
    return password


def change_role(ctx: StoreContext, user_id: str, role: Role) -> Account:
    """Give an account another role; its sessions end (their tokens carry the old role).

    Raises:
        PermissionDeniedError: the actor is not an admin, or demotes themselves or the last
            active admin (the refusal is committed).
        RecordNotFoundError: no such account.
    """
    session, actor = ctx.session, ctx.actor
    require_role(session, actor, "user.role", Role.ADMIN)
    user = accounts.read_account(session, user_id)
    before = Role(user.role)
    if before is Role.ADMIN and role is not Role.ADMIN:
        _keep_an_admin(session, actor, "user.role", user, "demote")
    if before is not role:
        user.role = str(role)
        ended = end_user_sessions(session, user.id, reason="role_change")
        changed = {"from_role": str(before), "to_role": str(role), "sessions_ended": ended}
        ctx.audit("user.role", "user", resource_id=user.id, details=changed)
    session.flush()
    return accounts.account_of(session, user.id)


def remove_care_team_member(ctx: StoreContext, user_id: str, patient_id: str) -> bool:
    """Take a clinician off a patient's care team (admins); False if they were not on it.

    Raises:
        PermissionDeniedError: the actor is not an admin.
    """
    require_role(ctx.session, ctx.actor, "care_team.remove", Role.ADMIN)
    return accounts.remove_from_care_team(ctx, user_id, patient_id)


def list_care_team(ctx: StoreContext, patient_id: str) -> list[CareTeamMember]:
    """A patient's care team by username (admins; no patient data). Audited.

    Raises:
        PermissionDeniedError: the actor is not an admin.
    """
    require_role(ctx.session, ctx.actor, "care_team.list", Role.ADMIN)
    members = accounts.care_team_members(ctx.session, patient_id)
    ctx.audit("care_team.list", "care_team", patient_id=patient_id, details={"count": len(members)})
    return members
