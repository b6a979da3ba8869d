"""Auth: password login for an access + refresh token pair, refresh rotation, logout."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from clinsight.api.deps import AnyUser, DbSession, State
from clinsight.api.schemas import LoginIn, RefreshIn, TokenOut
from clinsight.security.tokens import TokenPair
from clinsight.services.auth import log_in, log_out, refresh_session

__all__ = ["PUBLIC_PATHS", "router"]

router = APIRouter(prefix="/auth", tags=["auth"])
PUBLIC_PATHS = frozenset({"/api/v1/auth/token", "/api/v1/auth/refresh"})


def _out(pair: TokenPair) -> TokenOut:
    return TokenOut(
        access_token=pair.access_token,
        expires_at=pair.access_expires_at,
        refresh_token=pair.refresh_token,
        refresh_expires_at=pair.refresh_expires_at,
    )


@router.post("/token", response_model=TokenOut)
def login(body: LoginIn, state: State, session: DbSession) -> TokenOut:
    """Log in with username and password; failures get one generic 401 and are throttled."""
    signed_in = log_in(session, state.issuer, body.username, body.password, settings=state.settings)
    return _out(signed_in.tokens)


@router.post("/refresh", response_model=TokenOut)
def refresh(body: RefreshIn, state: State, session: DbSession) -> TokenOut:
    """Trade a refresh token for a new pair; reusing one revokes the whole session."""
    return _out(refresh_session(session, state.issuer, body.refresh_token))


@router.post("/logout", status_code=204)
def logout(user: AnyUser, state: State, session: DbSession, request: Request) -> Response:
    """End the session of the access token: it and its refresh tokens stop working at once."""
    del user
    log_out(session, state.issuer, request.state.auth_session_id)
    return Response(status_code=204)
