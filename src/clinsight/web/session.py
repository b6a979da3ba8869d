"""Web login sessions: token cookies (Secure, HttpOnly, SameSite=Strict) and CSRF tokens.

The cookies hold the same access and refresh tokens as the API, so the idle (30 min)
and absolute (12 h) limits, rotation and logout-revokes-at-once come from
`security.tokens`. A form's CSRF token is an HMAC of the login session id.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from fastapi import Request, Response
from sqlalchemy.orm import Session

from clinsight.api.deps import AppState
from clinsight.errors import AuthenticationError
from clinsight.security.tokens import TokenPair
from clinsight.services.auth import refresh_session
from clinsight.store.actors import Principal

__all__ = [
    "ACCESS_COOKIE",
    "LOGIN_CSRF_COOKIE",
    "REFRESH_COOKIE",
    "WebSession",
    "check_csrf",
    "clear_cookies",
    "csrf_token",
    "new_login_csrf",
    "set_session_cookies",
    "web_session",
]

ACCESS_COOKIE, REFRESH_COOKIE, LOGIN_CSRF_COOKIE = "cs_access", "cs_refresh", "cs_login_csrf"


@dataclass(frozen=True)
class WebSession:
    """The logged-in user of a page request, its session id and new cookies if it rotated."""

    principal: Principal
    session_id: str
    csrf: str
    rotated: TokenPair | None


def csrf_token(state: AppState, session_id: str) -> str:
    """The CSRF token of a login session (HMAC-SHA256 with the token key)."""
    key = state.keyring.token_key
    return hmac.new(key, f"csrf:{session_id}".encode(), hashlib.sha256).hexdigest()


def check_csrf(state: AppState, web: WebSession, submitted: str) -> None:
    """Refuse a form whose CSRF token is not this session's.

    Raises:
        AuthenticationError: missing or wrong token (reload the page and submit again).
    """
    expected = csrf_token(state, web.session_id).encode()
    if not hmac.compare_digest(expected, (submitted or "").encode("utf-8", "replace")):
        raise AuthenticationError("the form's security token is invalid; reload and try again")


def new_login_csrf() -> str:
    """A random token for the login form (double-submit: cookie and hidden field)."""
    return secrets.token_urlsafe(24)


def web_session(request: Request, state: AppState, session: Session) -> WebSession | None:
    """The logged-in user from the cookies, refreshing an expired access token once.

    Returns None when there is no live session (the page redirects to the login).
    """
    access = request.cookies.get(ACCESS_COOKIE, "")
    rotated = None
    try:
        principal = state.issuer.authenticate(session, access)
    except AuthenticationError:
        refresh = request.cookies.get(REFRESH_COOKIE)
        if not refresh:
            return None
        try:
            rotated = refresh_session(session, state.issuer, refresh)
            access = rotated.access_token
            principal = state.issuer.authenticate(session, access)
        except AuthenticationError:
            session.rollback()
            return None
    sid = state.issuer.decode_access_token(access).session_id
    return WebSession(principal, sid, csrf_token(state, sid), rotated)


def set_session_cookies(response: Response, pair: TokenPair) -> None:
    """Store a token pair in Secure, HttpOnly, SameSite=Strict cookies."""
    for name, value in ((ACCESS_COOKIE, pair.access_token), (REFRESH_COOKIE, pair.refresh_token)):
        response.set_cookie(
            name,
            value,
            expires=pair.refresh_expires_at,
            secure=True,
            httponly=True,
            samesite="strict",
            path="/",
        )


def clear_cookies(response: Response) -> None:
    """Forget the session cookies."""
    for name in (ACCESS_COOKIE, REFRESH_COOKIE):
        response.delete_cookie(name, path="/", secure=True, httponly=True, samesite="strict")
