"""Accounts (admins): create, list, disable, enable, reset the password, change the role."""

from __future__ import annotations

from fastapi import APIRouter

from clinsight.api.admin_schemas import AccountOut, PasswordResetOut, RoleIn
from clinsight.api.deps import Admin, State, StoreCtx
from clinsight.api.schemas import UserIn, UserOut
from clinsight.services.users import (
    change_account_role,
    create_account,
    list_users,
    reset_account_password,
    set_account_active,
)

__all__ = ["router"]

router = APIRouter(prefix="/users", tags=["users"])


@router.post("", response_model=UserOut, status_code=201)
def create(body: UserIn, user: Admin, ctx: StoreCtx, state: State) -> UserOut:
    """Create an account with a role."""
    record = create_account(
        ctx.session,
        state.settings,
        username=body.username,
        password=body.password,
        role=body.role,
        actor=user,
    )
    return UserOut.model_validate(record)


@router.get("", response_model=list[AccountOut])
def users(user: Admin, ctx: StoreCtx) -> list[AccountOut]:
    """Accounts by username (at most 100) with role, active, locked and created."""
    del user
    return [AccountOut.model_validate(u) for u in list_users(ctx)]


@router.post("/{user_id}/disable", response_model=AccountOut)
def disable(user_id: str, user: Admin, ctx: StoreCtx) -> AccountOut:
    """Disable an account: its sessions end at once (not yourself, not the last admin)."""
    return AccountOut.model_validate(set_account_active(ctx, user_id, active=False))


@router.post("/{user_id}/enable", response_model=AccountOut)
def enable(user_id: str, user: Admin, ctx: StoreCtx) -> AccountOut:
    """Enable a disabled account again."""
    return AccountOut.model_validate(set_account_active(ctx, user_id, active=True))


@router.post("/{user_id}/reset-password", response_model=PasswordResetOut)
def reset_password(user_id: str, user: Admin, ctx: StoreCtx, state: State) -> PasswordResetOut:
    """A temporary password, shown once; the account's lockout clears and its sessions end."""
    reset = reset_account_password(ctx, state.settings, user_id)
    return PasswordResetOut(account=AccountOut.model_validate(reset.account),
                            temporary_password=reset.temporary_password)  # fmt: skip


@router.post("/{user_id}/role", response_model=AccountOut)
def role(user_id: str, body: RoleIn, user: Admin, ctx: StoreCtx) -> AccountOut:
    """Change an account's role; its sessions end (not your own, not the last admin's)."""
    return AccountOut.model_validate(change_account_role(ctx, user_id, body.role))
