"""Signing in as a use case: password login (throttled, rehashed, audited), refresh rotation
and logout, each committed by the service, a refused login and a reused refresh token too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from clinsight.config import Settings
from clinsight.errors import AuthenticationError, RefreshReuseError
from clinsight.security.passwords import LOGIN_FAILED
from clinsight.security.tokens import TokenIssuer
from clinsight.services.auth import authenticate_password, log_in, log_out, refresh_session
from clinsight.store.crypto import KeyRing
from clinsight.store.tables import User
from tests.support.store import PASSWORD, People

T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def issuer(settings: Settings, keyring: KeyRing) -> TokenIssuer:
    return TokenIssuer.from_settings(settings, keyring)


def _failures(session: Session, username: str) -> tuple[int, datetime | None]:
    row = session.execute(
        sa.select(User.failed_logins, User.locked_until).where(User.username == username)
    ).one()
    return row[0], row[1]


def test_login_succeeds_and_rehashes_old_parameters(
    people: People,
    sessions: sessionmaker[Session],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(settings, "password_hash_time_cost", 2)
    with sessions() as session:
        principal = authenticate_password(session, " Alice ", PASSWORD, settings=settings)
        stored = session.execute(sa.text("SELECT password_hash FROM users WHERE username='alice'"))
        password_hash = stored.scalar()
        assert password_hash is not None
        assert password_hash.startswith("$argon2id$v=19$m=1024,t=2,p=1$")
        login = session.execute(
            sa.text("SELECT action, outcome, actor_id FROM audit_log ORDER BY seq DESC")
        ).first()
    assert principal == people.alice
    assert tuple(login) == ("auth.login", "success", people.alice.user_id)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("username", "password"),
    [("alice", "wrong password!"), ("nobody", PASSWORD), ("", "")],
)
def test_every_failure_has_the_same_message(
    people: People,
    sessions: sessionmaker[Session],
    settings: Settings,
    username: str,
    password: str,
) -> None:
    with sessions() as session:
        with pytest.raises(AuthenticationError) as caught:
            authenticate_password(session, username, password, settings=settings)
        outcome = session.execute(
            sa.text("SELECT outcome FROM audit_log ORDER BY seq DESC")
        ).scalar()
    assert str(caught.value) == LOGIN_FAILED
    assert outcome == "failure"


def test_login_throttling_locks_even_the_right_password(
    people: People, sessions: sessionmaker[Session], settings: Settings
) -> None:
    def refused(password: str, at: datetime) -> None:
        with sessions() as session, pytest.raises(AuthenticationError) as caught:
            authenticate_password(session, "alice", password, settings=settings, now=at)
        assert str(caught.value) == LOGIN_FAILED

    for i in range(6):
        refused("wrong password!", T0 + timedelta(seconds=i))
    with sessions() as session:
        assert _failures(session, "alice") == (6, T0 + timedelta(seconds=6))
    refused(PASSWORD, T0 + timedelta(seconds=5.5))  # locked for 1 s after the 6th failure
    with sessions() as session:
        assert (
            authenticate_password(
                session, "alice", PASSWORD, settings=settings, now=T0 + timedelta(seconds=6)
            )
            == people.alice
        )
        assert _failures(session, "alice") == (0, None)


def test_at_most_the_hourly_cap_of_failures(
    people: People,
    sessions: sessionmaker[Session],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(settings, "login_max_failures_per_hour", 8)
    at = T0
    with sessions() as session:
        for _ in range(8):
            with pytest.raises(AuthenticationError):
                authenticate_password(session, "bob", "wrong password!", settings=settings, now=at)
            at += timedelta(minutes=6)  # past any backoff
        failures, locked = _failures(session, "bob")
    assert failures == 8
    assert locked is not None
    assert locked == T0 + timedelta(hours=1)
    with sessions() as session, pytest.raises(AuthenticationError):
        authenticate_password(
            session, "bob", PASSWORD, settings=settings, now=T0 + timedelta(minutes=59)
        )
    with sessions() as session:
        assert (
            authenticate_password(
                session, "bob", PASSWORD, settings=settings, now=T0 + timedelta(hours=1)
            )
            == people.bob
        )


def test_a_refused_login_is_committed_before_the_error(
    people: People, sessions: sessionmaker[Session], settings: Settings, issuer: TokenIssuer
) -> None:
    with sessions() as session:
        with pytest.raises(AuthenticationError, match="invalid username or password"):
            log_in(session, issuer, "alice", "wrong password!", settings=settings)
        session.rollback()  # what the request's session does when the error propagates
    with sessions() as session:
        failures = _failures(session, "alice")
        entry = session.execute(
            sa.text("SELECT action, outcome, resource_id, details FROM audit_log ORDER BY seq DESC")
        ).first()
        opened = session.execute(sa.text("SELECT count(*) FROM auth_sessions")).scalar()
    assert failures == (1, None)
    assert entry is not None
    assert tuple(entry[:3]) == ("auth.login", "failure", people.alice.user_id)
    assert "wrong password" in str(entry[3])
    assert opened == 0


def test_log_in_refresh_and_log_out_are_committed(
    people: People, sessions: sessionmaker[Session], settings: Settings, issuer: TokenIssuer
) -> None:
    with sessions() as session:
        signed_in = log_in(session, issuer, "alice", PASSWORD, settings=settings)
    assert signed_in.principal == people.alice
    with sessions() as session:
        rotated = refresh_session(session, issuer, signed_in.tokens.refresh_token)
    with sessions() as session:
        assert issuer.authenticate(session, rotated.access_token) == people.alice
        log_out(session, issuer, rotated.session_id)
    with sessions() as session, pytest.raises(AuthenticationError, match="session has ended"):
        issuer.authenticate(session, rotated.access_token)
    with sessions() as session:
        actions = session.execute(
            sa.text("SELECT action, outcome FROM audit_log ORDER BY seq")
        ).all()
    assert [tuple(a) for a in actions][-2:] == [
        ("auth.login", "success"),
        ("auth.logout", "success"),
    ]


def test_refresh_reuse_revokes_durably_although_the_request_fails(
    people: People, sessions: sessionmaker[Session], settings: Settings, issuer: TokenIssuer
) -> None:
    with sessions() as session:
        first = log_in(session, issuer, "alice", PASSWORD, settings=settings).tokens
    with sessions() as session:
        second = refresh_session(session, issuer, first.refresh_token)
    with sessions() as session:
        with pytest.raises(RefreshReuseError, match="already used, so it may be stolen"):
            refresh_session(session, issuer, first.refresh_token)
        session.rollback()
    with sessions() as session, pytest.raises(AuthenticationError, match="session has ended"):
        refresh_session(session, issuer, second.refresh_token)
    with sessions() as session:
        reason = session.execute(sa.text("SELECT revoked_reason FROM auth_sessions")).scalar()
        reuse = session.execute(
            sa.text("SELECT outcome FROM audit_log WHERE action = 'auth.refresh_reuse'")
        ).scalar()
    assert (reason, reuse) == ("refresh_reuse", "denied")


def test_a_refused_refresh_commits_nothing(
    people: People, sessions: sessionmaker[Session], settings: Settings, issuer: TokenIssuer
) -> None:
    with sessions() as session:
        pair = log_in(session, issuer, "alice", PASSWORD, settings=settings).tokens
    with sessions() as session:
        session.execute(sa.update(User).where(User.username == "alice").values(active=False))
        session.commit()
    with sessions() as session:
        with pytest.raises(AuthenticationError, match="session has expired"):
            refresh_session(session, issuer, pair.refresh_token)
        session.rollback()
    with sessions() as session:
        used = session.execute(sa.text("SELECT used_at FROM refresh_tokens")).scalar()
    assert used is None
