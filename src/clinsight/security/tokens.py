"""Short-lived JWT access tokens and rotating opaque refresh tokens.

A login starts a session (a refresh-token family). Access tokens (HS256, no leeway)
carry the session id, so ending the session rejects them at once. A refresh token
is stored only as its sha256 and works once: refreshing marks it used and returns a
new pair; presenting a used token again means it was stolen, so the whole family is
revoked. Sessions end after `session_idle_minutes` without a refresh and
`session_absolute_hours` after login.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from clinsight.config import Settings
from clinsight.errors import AuthenticationError, ConfigurationError, RefreshReuseError
from clinsight.store import audit
from clinsight.store.actors import Principal
from clinsight.store.crypto import KeyRing
from clinsight.store.roles import Role
from clinsight.store.tables import AuthSession, RefreshToken, User, new_id, utcnow

__all__ = ["AccessClaims", "TokenIssuer", "TokenPair", "end_user_sessions", "jwt_problem"]

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "iss", "jti", "sub", "sid", "role"]
_JWT_PROBLEMS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "it has expired"),
    (jwt.ImmatureSignatureError, "it is not valid yet"),
    (jwt.InvalidSignatureError, "its signature does not match"),
    (jwt.InvalidAudienceError, "it was issued for another audience"),
    (jwt.InvalidIssuerError, "it was issued by another issuer"),
    (jwt.InvalidAlgorithmError, "its signing algorithm is not accepted"),
    (jwt.DecodeError, "it is not a well-formed token"),
)


def jwt_problem(exc: Exception) -> str:
    """What is wrong with a refused token, in words (never the library's exception text)."""
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"its {exc.claim} claim is missing"
    for cls, words in _JWT_PROBLEMS:
        if isinstance(exc, cls):
            return words
    return "it is not a token this service issued"


# Columns, not entities, built once: this runs on every API request.
_SESSION_OF_TOKEN = (
    select(
        AuthSession.revoked_at,
        AuthSession.absolute_expires_at,
        User.id,
        User.username,
        User.role,
        User.active,
    )
    .join(User, AuthSession.user_id == User.id)
    .where(AuthSession.id == bindparam("session_id"), User.id == bindparam("user_id"))
)


@dataclass(frozen=True)
class TokenPair:
    """What a login or refresh hands to the client."""

    access_token: str
    access_expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime
    session_id: str


@dataclass(frozen=True)
class AccessClaims:
    """The verified claims of an access token."""

    user_id: str
    role: Role
    session_id: str
    token_id: str
    expires_at: datetime


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenIssuer:
    """Issues, verifies, rotates and revokes tokens with one HS256 secret."""

    def __init__(self, secret: bytes, settings: Settings) -> None:
        if len(secret) < 32:
            raise ConfigurationError("the JWT secret must be at least 32 bytes; set a longer one")
        self._secret = secret
        self._settings = settings

    @classmethod
    def from_settings(cls, settings: Settings, keyring: KeyRing) -> TokenIssuer:
        """Use `settings.jwt_secret` when set, else the token key of the key ring.

        Raises:
            ConfigurationError: the configured secret is shorter than 32 bytes.
        """
        secret = settings.jwt_secret
        return cls(secret.get_secret_value().encode() if secret else keyring.token_key, settings)

    def issue_access_token(
        self, principal: Principal, session_id: str, *, now: datetime | None = None
    ) -> tuple[str, datetime]:
        """A signed access token for `principal` in `session_id`, and its expiry."""
        now = now or utcnow()
        expires = now + timedelta(minutes=self._settings.access_token_minutes)
        claims = {
            "iss": self._settings.jwt_issuer,
            "sub": principal.user_id,
            "role": str(principal.role),
            "sid": session_id,
            "jti": new_id(),
            "iat": int(now.timestamp()),
            "exp": int(expires.timestamp()),
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM), expires

    def decode_access_token(self, token: str) -> AccessClaims:
        """Verify signature, issuer and expiry (no leeway) and return the claims.

        Raises:
            AuthenticationError: the token is expired, forged, malformed or incomplete.
        """
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=self._settings.jwt_issuer,
                leeway=0,
                options={"require": REQUIRED_CLAIMS},
            )
            role = Role(claims["role"])
        except jwt.ExpiredSignatureError as exc:
            raise AuthenticationError("access token expired; refresh it or log in again") from exc
        except (jwt.InvalidTokenError, ValueError) as exc:
            raise AuthenticationError(
                f"the access token was refused: {jwt_problem(exc)}; log in again"
            ) from exc
        return AccessClaims(
            user_id=claims["sub"],
            role=role,
            session_id=claims["sid"],
            token_id=claims["jti"],
            expires_at=datetime.fromtimestamp(claims["exp"], tz=UTC),
        )

    def _new_pair(
        self, session: Session, principal: Principal, auth: AuthSession, now: datetime
    ) -> TokenPair:
        idle = timedelta(minutes=self._settings.session_idle_minutes)
        refresh = secrets.token_urlsafe(32)
        expires = min(now + idle, auth.absolute_expires_at)
        session.add(
            RefreshToken(
                id=new_id(),
                session_id=auth.id,
                token_hash=_digest(refresh),
                created_at=now,
                expires_at=expires,
            )
        )
        access, access_expires = self.issue_access_token(principal, auth.id, now=now)
        return TokenPair(access, min(access_expires, expires), refresh, expires, auth.id)

    def start_session(
        self, session: Session, principal: Principal, *, now: datetime | None = None
    ) -> TokenPair:
        """Open a login session for an authenticated principal (the caller commits)."""
        now = now or utcnow()
        absolute = now + timedelta(hours=self._settings.session_absolute_hours)
        auth = AuthSession(
            id=new_id(), user_id=principal.user_id, created_at=now, absolute_expires_at=absolute
        )
        session.add(auth)
        return self._new_pair(session, principal, auth, now)

    def refresh(
        self, session: Session, refresh_token: str, *, now: datetime | None = None
    ) -> TokenPair:
        """Trade a refresh token for a new pair; a reused token revokes its whole family.

        The caller commits on success, and on `RefreshReuseError` too (the revocation and
        its audit entry, flushed here, must outlive the refused request).

        Raises:
            RefreshReuseError: the token was used before; its session is now revoked.
            AuthenticationError: unknown, expired or revoked token, or inactive user.
        """
        now = now or utcnow()
        found = session.execute(
            select(RefreshToken, AuthSession, User)
            .join(AuthSession, RefreshToken.session_id == AuthSession.id)
            .join(User, AuthSession.user_id == User.id)
            .where(RefreshToken.token_hash == _digest(refresh_token))
            .execution_options(populate_existing=True)
        ).one_or_none()
        if found is None:
            raise AuthenticationError("refresh token is not valid; log in again")
        token, auth, user = found
        if auth.revoked_at is not None:
            raise AuthenticationError("this session has ended; log in again")
        claimed = session.execute(
            update(RefreshToken)
            .where(RefreshToken.id == token.id, RefreshToken.used_at.is_(None))
            .values(used_at=now)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            self.revoke_session(session, auth.id, reason="refresh_reuse", now=now)
            session.flush()
            raise RefreshReuseError(
                "refresh token was already used, so it may be stolen; the session is revoked, "
                "log in again"
            )
        if now >= token.expires_at or now >= auth.absolute_expires_at or not user.active:
            raise AuthenticationError("this session has expired; log in again")
        principal = Principal(user_id=user.id, username=user.username, role=Role(user.role))
        return self._new_pair(session, principal, auth, now)

    def revoke_session(
        self,
        session: Session,
        session_id: str,
        *,
        reason: str = "logout",
        now: datetime | None = None,
    ) -> None:
        """End a session (logout or reuse): its refresh and access tokens stop working now.

        The caller commits.
        """
        now = now or utcnow()
        auth = session.get(AuthSession, session_id, populate_existing=True)
        if auth is None or auth.revoked_at is not None:
            return
        _end_session(session, auth, reason, now)

    def authenticate(
        self, session: Session, access_token: str, *, now: datetime | None = None
    ) -> Principal:
        """The principal behind a valid access token whose session and user are still live.

        Raises:
            AuthenticationError: bad or expired token, ended session or inactive user.
        """
        return self.authenticate_claims(session, self.decode_access_token(access_token), now=now)

    def authenticate_claims(
        self, session: Session, claims: AccessClaims, *, now: datetime | None = None
    ) -> Principal:
        """`authenticate` for a token already decoded (and so already checked).

        Raises:
            AuthenticationError: ended or unknown session, or inactive user.
        """
        now = now or utcnow()
        ids = {"session_id": claims.session_id, "user_id": claims.user_id}
        found = session.execute(_SESSION_OF_TOKEN, ids).one_or_none()
        if found is None:
            raise AuthenticationError("access token names no known session; log in again")
        if found.revoked_at is not None or now >= found.absolute_expires_at or not found.active:
            raise AuthenticationError("this session has ended; log in again")
        return Principal(user_id=found.id, username=found.username, role=Role(found.role))


def _end_session(session: Session, auth: AuthSession, reason: str, now: datetime) -> None:
    auth.revoked_at, auth.revoked_reason = now, reason
    audit.append(
        session,
        action=f"auth.{reason}",
        resource_type="session",
        actor_id=auth.user_id,
        resource_id=auth.id,
        outcome=audit.Outcome.DENIED if reason == "refresh_reuse" else audit.Outcome.SUCCESS,
        at=now,
    )


def end_user_sessions(
    session: Session, user_id: str, *, reason: str, now: datetime | None = None
) -> int:
    """End every live session of an account at once (disabled, password reset, role
    changed): their access and refresh tokens stop working. How many ended; the caller
    commits."""
    now = now or utcnow()
    live = session.execute(
        select(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .execution_options(populate_existing=True)
    ).scalars()
    ended = 0
    for auth in live:
        _end_session(session, auth, reason, now)
        ended += 1
    return ended
