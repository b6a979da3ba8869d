"""Argon2id hashing and the login backoff; a login step never commits (the service does)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from clinsight.config import Settings
from clinsight.errors import AuthenticationError
from clinsight.security import passwords
from clinsight.security.passwords import ThrottlePolicy, next_lock
from clinsight.store.tables import User
from tests.support.store import People

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


def test_a_refused_login_step_commits_nothing(
    people: People, sessions: sessionmaker[Session], settings: Settings
) -> None:
    with sessions() as session:
        check = passwords.read_login(session, "alice", now=T0)
        with pytest.raises(AuthenticationError):
            passwords.record_login(session, check, "wrong", False, settings=settings, now=T0)
        session.rollback()
        failures = session.execute(
            sa.select(User.failed_logins).where(User.id == people.alice.user_id)
        ).scalar()
        refusals = session.execute(
            sa.text("SELECT count(*) FROM audit_log WHERE outcome = 'failure'")
        ).scalar()
    assert (failures, refusals) == (0, 0)
