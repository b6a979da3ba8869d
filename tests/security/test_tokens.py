"""Access tokens (HS256, no leeway) and rotating refresh tokens with reuse detection."""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from clinsight.config import Settings
from clinsight.errors import AuthenticationError, ConfigurationError, RefreshReuseError
from clinsight.security.tokens import TokenIssuer, TokenPair
from clinsight.store.crypto import KeyRing
from clinsight.store.roles import Role
from clinsight.store.tables import utcnow
from tests.support.store import People


@pytest.fixture
def issuer(settings: Settings, keyring: KeyRing) -> TokenIssuer:
    return TokenIssuer.from_settings(settings, keyring)


def _login(sessions: sessionmaker[Session], issuer: TokenIssuer, people: People) -> TokenPair:
    with sessions() as session:
        pair = issuer.start_session(session, people.alice)
        session.commit()
    return pair


def test_access_token_claims(issuer: TokenIssuer, people: People, keyring: KeyRing) -> None:
    now = utcnow().replace(microsecond=0)
    token, expires = issuer.issue_access_token(people.alice, "sid-1", now=now)
    assert expires == now + timedelta(minutes=15)
    claims = jwt.decode(token, keyring.token_key, algorithms=["HS256"], issuer="clinsight")
    assert set(claims) == {"iss", "sub", "role", "sid", "jti", "iat", "exp"}
    assert (claims["sub"], claims["role"], claims["sid"]) == (
        people.alice.user_id,
        "clinician",
        "sid-1",
    )
    assert claims["exp"] - claims["iat"] == 15 * 60
    decoded = issuer.decode_access_token(token)
    assert (decoded.user_id, decoded.role, decoded.session_id) == (
        people.alice.user_id,
        Role.CLINICIAN,
        "sid-1",
    )
    assert decoded.expires_at == expires


def test_expired_forged_and_foreign_tokens_are_rejected(
    issuer: TokenIssuer, people: People, settings: Settings, keyring: KeyRing
) -> None:
    expired, _ = issuer.issue_access_token(people.alice, "s", now=utcnow() - timedelta(minutes=16))
    with pytest.raises(AuthenticationError, match="access token expired; refresh it"):
        issuer.decode_access_token(expired)
    good, _ = issuer.issue_access_token(people.alice, "s")
    other = TokenIssuer(b"x" * 32, settings)
    with pytest.raises(AuthenticationError, match="its signature does not match"):
        other.decode_access_token(good)
    claims = jwt.decode(good, keyring.token_key, algorithms=["HS256"], issuer="clinsight")
    for forged in (
        jwt.encode({**claims, "iss": "elsewhere"}, keyring.token_key, algorithm="HS256"),
        jwt.encode({**claims, "role": "root"}, keyring.token_key, algorithm="HS256"),
        jwt.encode(
            {k: v for k, v in claims.items() if k != "sid"}, keyring.token_key, algorithm="HS256"
        ),
        jwt.encode(claims, "", algorithm="none"),  # PyJWT takes "" for alg "none"'s no key
    ):
        with pytest.raises(AuthenticationError, match="access token was refused: ") as refused:
            issuer.decode_access_token(forged)
        assert "Error" not in str(refused.value)
        assert "'" not in str(refused.value)
    with pytest.raises(AuthenticationError, match="not a well-formed token"):
        issuer.decode_access_token("not-a-token")


def test_configured_secret_wins_and_must_be_long(settings: Settings, keyring: KeyRing) -> None:
    settings_with = settings.model_copy(update={"jwt_secret": SecretStr("s" * 40)})
    assert TokenIssuer.from_settings(settings_with, keyring)._secret == b"s" * 40
    with pytest.raises(ConfigurationError, match="at least 32 bytes"):
        TokenIssuer(b"short", settings)


def test_refresh_rotates_and_reuse_revokes_the_family(
    issuer: TokenIssuer, people: People, sessions: sessionmaker[Session]
) -> None:
    first = _login(sessions, issuer, people)
    with sessions() as session:
        assert issuer.authenticate(session, first.access_token) == people.alice
        second = issuer.refresh(session, first.refresh_token)
        session.commit()
    assert second.session_id == first.session_id
    assert second.refresh_token != first.refresh_token
    with sessions() as session:
        third = issuer.refresh(session, second.refresh_token)
        session.commit()
    with sessions() as session:
        with pytest.raises(RefreshReuseError, match="already used"):
            issuer.refresh(session, first.refresh_token)  # a thief replays the first token
        session.commit()  # the caller commits the revocation (see services.auth)
    for pair in (third,):
        with sessions() as session, pytest.raises(AuthenticationError, match="session has ended"):
            issuer.refresh(session, pair.refresh_token)
        with sessions() as session, pytest.raises(AuthenticationError, match="session has ended"):
            issuer.authenticate(session, pair.access_token)
    with sessions() as session:
        stored = session.execute(sa.text("SELECT token_hash FROM refresh_tokens")).scalars().all()
        reason = session.execute(sa.text("SELECT revoked_reason FROM auth_sessions")).scalar()
        reuse = session.execute(
            sa.text("SELECT outcome FROM audit_log WHERE action = 'auth.refresh_reuse'")
        ).scalar()
    assert len(stored) == 3
    assert first.refresh_token not in stored
    assert (reason, reuse) == ("refresh_reuse", "denied")


def test_logout_revokes_access_at_once(
    issuer: TokenIssuer, people: People, sessions: sessionmaker[Session]
) -> None:
    pair = _login(sessions, issuer, people)
    with sessions() as session:
        issuer.revoke_session(session, pair.session_id)
        session.commit()
    with sessions() as session, pytest.raises(AuthenticationError, match="session has ended"):
        issuer.authenticate(session, pair.access_token)
    with sessions() as session, pytest.raises(AuthenticationError, match="session has ended"):
        issuer.refresh(session, pair.refresh_token)


def test_idle_and_absolute_session_limits(
    issuer: TokenIssuer, people: People, sessions: sessionmaker[Session]
) -> None:
    pair = _login(sessions, issuer, people)
    start = pair.refresh_expires_at - timedelta(minutes=30)
    with sessions() as session, pytest.raises(AuthenticationError, match="session has expired"):
        issuer.refresh(session, pair.refresh_token, now=start + timedelta(minutes=31))
    now = utcnow()
    pair = _login(sessions, issuer, people)
    for _ in range(24):  # refreshed every 29 minutes: alive for 24 * 29 min = 11 h 36 min
        now += timedelta(minutes=29)
        with sessions() as session:
            pair = issuer.refresh(session, pair.refresh_token, now=now)
            session.commit()
    assert pair.refresh_expires_at < now + timedelta(minutes=30)  # capped by the 12 hours
    with sessions() as session, pytest.raises(AuthenticationError, match="session has expired"):
        issuer.refresh(session, pair.refresh_token, now=now + timedelta(minutes=29))


def test_unknown_refresh_token_is_rejected(
    issuer: TokenIssuer, sessions: sessionmaker[Session]
) -> None:
    with (
        sessions() as session,
        pytest.raises(AuthenticationError, match="refresh token is not valid"),
    ):
        issuer.refresh(session, "made-up")
