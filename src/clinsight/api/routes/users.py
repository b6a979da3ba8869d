"""Accounts (admins): create and list users."""

from __future__ import annotations

from fastapi import APIRouter

from clinsight.api.deps import Admin, State, StoreCtx
from clinsight.api.schemas import UserIn, UserOut
from clinsight.services.users import create_account, list_users

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


@router.get("", response_model=list[UserOut])
def users(user: Admin, ctx: StoreCtx) -> list[UserOut]:
    """Accounts by username (at most 100)."""
    del user
    return [UserOut.model_validate(u) for u in list_users(ctx)]
