"""Use cases of signing in: password login (a new session and token pair), refresh-token
rotation and logout. The API and the web call these same functions; each commits its
own work, and a refused login or a reused refresh token is committed before the error is
re-raised, so failure counts, lockouts, revocations and their audit entries survive it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from clinsight.config import Settings, get_settings
from clinsight.errors import AuthenticationError, RefreshReuseError
from clinsight.security import passwords
from clinsight.security.tokens import TokenIssuer, TokenPair
from clinsight.store.actors import Principal
from clinsight.store.tables import utcnow

__all__ = ["Login", "authenticate_password", "log_in", "log_out", "refresh_session"]


@dataclass(frozen=True)
class Login:
    """A successful login: who logged in and the tokens of their new session."""

    principal: Principal
    tokens: TokenPair


def authenticate_password(
    session: Session,
    username: str,
    password: str,
    *,
    settings: Settings | None = None,
    now: datetime | None = None,
) -> Principal:
    """Check a password login, with throttling, rehash-on-login and an audit entry.

    The Argon2 check runs between two transactions, never inside one: on SQLite a
    transaction holds the store's write lock, and a login must not stall every other
    request for the tens of milliseconds Argon2 takes. Committed in every outcome, so
    failures are counted and audited.

    Raises:
        AuthenticationError: with the same message for every kind of failure.
    """
    settings = settings or get_settings()
    now = now or utcnow()
    check = passwords.read_login(session, username, now=now)
    session.commit()  # end the read before the slow Argon2 check
    verified = passwords.verify_login_password(check, password, settings)
    try:
        principal = passwords.record_login(
            session, check, password, verified, settings=settings, now=now
        )
    except AuthenticationError:
        session.commit()  # the refusal, its failure count and audit entry are kept
        raise
    session.commit()
    return principal


def log_in(
    session: Session,
    issuer: TokenIssuer,
    username: str,
    password: str,
    *,
    settings: Settings | None = None,
) -> Login:
    """Check the password (see `authenticate_password`) and open a session. Committed.

    Raises:
        AuthenticationError: with the same message for every kind of failure.
    """
    principal = authenticate_password(session, username, password, settings=settings)
    pair = issuer.start_session(session, principal)
    session.commit()
    return Login(principal, pair)


def refresh_session(session: Session, issuer: TokenIssuer, refresh_token: str) -> TokenPair:
    """Trade a refresh token for a new pair (rotation). Committed; a reused token revokes
    its session, which is committed (and audited as ``auth.refresh_reuse``) before the
    error is re-raised.

    Raises:
        RefreshReuseError: the token was used before; its session is revoked.
        AuthenticationError: unknown, expired or revoked token, or inactive user.
    """
    try:
        pair = issuer.refresh(session, refresh_token)
    except RefreshReuseError:
        session.commit()  # the revocation outlives the refused request
        raise
    session.commit()
    return pair


def log_out(session: Session, issuer: TokenIssuer, session_id: str) -> None:
    """End a login session at once (its access and refresh tokens stop working). Committed."""
    issuer.revoke_session(session, session_id)
    session.commit()
