"""Argon2id hashing, rehash on login, throttled login with one generic error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from clinsight.config import Settings
from clinsight.errors import AuthenticationError
from clinsight.security import passwords
from clinsight.security.passwords import LOGIN_FAILED, ThrottlePolicy, authenticate, next_lock
from clinsight.store.tables import User
from tests.support.store import PASSWORD, People

T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


def test_hash_verify_and_rehash(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    hashed = passwords.hash_password("s3cret passphrase", settings)
    assert hashed.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    assert passwords.verify_password(hashed, "s3cret passphrase", settings)
    assert not passwords.verify_password(hashed, "wrong passphrase", settings)
    assert not passwords.verify_password("not-a-hash", "s3cret passphrase", settings)
    assert not passwords.needs_rehash(hashed, settings)
    monkeypatch.setattr(settings, "password_hash_memory_kib", 2048)
    assert passwords.needs_rehash(hashed, settings)


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
        principal = authenticate(session, " Alice ", PASSWORD, settings=settings)
        stored = session.execute(sa.text("SELECT password_hash FROM users WHERE username='alice'"))
        assert stored.scalar().startswith("$argon2id$v=19$m=1024,t=2,p=1$")
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
            authenticate(session, username, password, settings=settings)
        outcome = session.execute(
            sa.text("SELECT outcome FROM audit_log ORDER BY seq DESC")
        ).scalar()
    assert str(caught.value) == LOGIN_FAILED
    assert outcome == "failure"


def test_next_lock_backs_off_exponentially_up_to_the_hourly_cap() -> None:
    policy = ThrottlePolicy(max_failures_per_hour=100, free_attempts=5)
    now = T0 + timedelta(minutes=10)
    delays = [next_lock(n, T0, now, policy) for n in (1, 5, 6, 7, 8, 14, 15, 99, 100)]
    assert delays[:2] == [None, None]
    assert [d - now for d in delays[2:8]] == [  # type: ignore[operator]
        timedelta(seconds=1),
        timedelta(seconds=2),
        timedelta(seconds=4),
        timedelta(seconds=256),
        timedelta(minutes=5),
        timedelta(minutes=5),
    ]
    assert delays[8] == T0 + timedelta(hours=1)


def test_login_throttling_locks_even_the_right_password(
    people: People, sessions: sessionmaker[Session], settings: Settings
) -> None:
    def refused(password: str, at: datetime) -> None:
        with sessions() as session, pytest.raises(AuthenticationError) as caught:
            authenticate(session, "alice", password, settings=settings, now=at)
        assert str(caught.value) == LOGIN_FAILED

    for i in range(6):
        refused("wrong password!", T0 + timedelta(seconds=i))
    with sessions() as session:
        assert _failures(session, "alice") == (6, T0 + timedelta(seconds=6))
    refused(PASSWORD, T0 + timedelta(seconds=5.5))  # locked for 1 s after the 6th failure
    with sessions() as session:
        assert (
            authenticate(
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
                authenticate(session, "bob", "wrong password!", settings=settings, now=at)
            at += timedelta(minutes=6)  # past any backoff
        failures, locked = _failures(session, "bob")
    assert failures == 8
    assert locked is not None
    assert locked == T0 + timedelta(hours=1)
    with sessions() as session, pytest.raises(AuthenticationError):
        authenticate(session, "bob", PASSWORD, settings=settings, now=T0 + timedelta(minutes=59))
    with sessions() as session:
        assert (
            authenticate(session, "bob", PASSWORD, settings=settings, now=T0 + timedelta(hours=1))
            == people.bob
        )
