"""Argon2id password hashing and the checks of a password login with per-account throttling.

A login failure always gets the same message, whether the account exists, is
disabled, locked or the password is wrong, and an unknown user costs the same
Argon2 work as a known one. After `free_attempts` failures each further one
locks the account for a doubling delay, and at most `max_failures_per_hour`
failures are accepted per account per hour. The steps of a login (`read_login`,
`verify_login_password`, `record_login`) never commit: `services.auth` owns the
transactions around them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session

from clinsight.config import Settings, get_settings
from clinsight.errors import AuthenticationError, DataError
from clinsight.store import audit
from clinsight.store.actors import Principal
from clinsight.store.roles import Role
from clinsight.store.tables import User

__all__ = [
    "LOGIN_FAILED",
    "LoginCheck",
    "ThrottlePolicy",
    "check_new_password",
    "hash_password",
    "needs_rehash",
    "next_lock",
    "normalise_username",
    "read_login",
    "record_login",
    "verify_login_password",
    "verify_password",
]

LOGIN_FAILED = "invalid username or password, or too many attempts; wait a moment and try again"
MIN_PASSWORD = 12
MAX_PASSWORD = 256
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
WINDOW = timedelta(hours=1)


@lru_cache(maxsize=4)
def _hasher(time_cost: int, memory_kib: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(
        time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
    )


def _settings_hasher(settings: Settings | None) -> PasswordHasher:
    s = settings or get_settings()
    return _hasher(
        s.password_hash_time_cost, s.password_hash_memory_kib, s.password_hash_parallelism
    )


@lru_cache(maxsize=4)
def _dummy_hash(hasher: PasswordHasher) -> str:
    return hasher.hash("clinsight-timing-equaliser")


def hash_password(password: str, settings: Settings | None = None) -> str:
    """Argon2id hash of `password` with the parameters in settings."""
    return _settings_hasher(settings).hash(password)


def verify_password(password_hash: str, password: str, settings: Settings | None = None) -> bool:
    """Whether `password` matches the hash (False for a wrong password or a malformed hash)."""
    try:
        return _settings_hasher(settings).verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str, settings: Settings | None = None) -> bool:
    """Whether the hash was made with other parameters than the current settings."""
    return _settings_hasher(settings).check_needs_rehash(password_hash)


def normalise_username(username: str) -> str:
    """Usernames compare case-insensitively and without surrounding spaces."""
    return username.strip().lower()


def check_new_password(username: str, password: str) -> None:
    """Refuse a username or password that does not meet the account rules.

    Raises:
        DataError: the username is not 3-64 of a-z 0-9 . _ -, or the password is shorter
            than 12 or longer than 256 characters, or equals the username.
    """
    name = normalise_username(username)
    if not USERNAME.match(name):
        raise DataError("username must be 3-64 characters of a-z, 0-9, '.', '_' or '-'")
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise DataError(f"password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters long")
    if password.strip().lower() == name:
        raise DataError("password must not be the username")


@dataclass(frozen=True)
class ThrottlePolicy:
    """How failed logins slow an account down."""

    max_failures_per_hour: int = 100
    free_attempts: int = 5
    base_delay: timedelta = timedelta(seconds=1)
    max_delay: timedelta = timedelta(minutes=5)


def next_lock(
    failures: int, window_start: datetime, now: datetime, policy: ThrottlePolicy
) -> datetime | None:
    """When the account unlocks after its `failures`-th failure in the window, or None."""
    if failures >= policy.max_failures_per_hour:
        return window_start + WINDOW
    if failures <= policy.free_attempts:
        return None
    delay = policy.base_delay * (1 << min(failures - policy.free_attempts - 1, 30))
    return now + min(delay, policy.max_delay)


@dataclass(frozen=True)
class LoginCheck:
    """What the first, unlocked read of a login saw, before the Argon2 check."""

    username: str
    password_hash: str | None
    usable: bool
    locked: bool


def _fail(session: Session, user: User | None, cause: str, now: datetime) -> AuthenticationError:
    audit.append(
        session,
        action="auth.login",
        resource_type="user",
        outcome=audit.Outcome.FAILURE,
        actor_id=user.id if user is not None else None,
        resource_id=user.id if user is not None else None,
        details={"cause": cause},
        at=now,
    )
    session.flush()
    return AuthenticationError(LOGIN_FAILED)


def _load_user(session: Session, username: str, *, lock: bool) -> User | None:
    query = select(User).where(User.username == normalise_username(username))
    if lock:
        query = query.with_for_update()
    return session.execute(query.execution_options(populate_existing=True)).scalar_one_or_none()


def read_login(session: Session, username: str, *, now: datetime) -> LoginCheck:
    """The account state a login checks the password against (a read; the caller ends the
    transaction before the slow Argon2 check)."""
    seen = _load_user(session, username, lock=False)
    return LoginCheck(
        username=username,
        password_hash=seen.password_hash if seen is not None else None,
        usable=seen is not None and seen.active,
        locked=seen is not None and seen.locked_until is not None and now < seen.locked_until,
    )


def verify_login_password(check: LoginCheck, password: str, settings: Settings) -> bool:
    """The Argon2 check of a login, outside any transaction; an unknown, inactive or locked
    account is checked against a dummy hash, so every case costs the same."""
    hashed = check.password_hash if check.usable and not check.locked else None
    return verify_password(hashed or _dummy_hash(_settings_hasher(settings)), password, settings)


def record_login(
    session: Session,
    check: LoginCheck,
    password: str,
    verified: bool,
    *,
    settings: Settings,
    now: datetime,
) -> Principal:
    """Conclude a login on the locked account row: count a failure (and lock the account
    when due) or reset the counters and rehash old parameters; audited and flushed, never
    committed.

    Raises:
        AuthenticationError: with the same message for every kind of failure; the caller
            commits before re-raising, so the failure is counted and audited.
    """
    policy = ThrottlePolicy(max_failures_per_hour=settings.login_max_failures_per_hour)
    user = _load_user(session, check.username, lock=True)
    if user is None or not user.active:
        raise _fail(session, user, "unknown user" if user is None else "inactive", now)
    if check.locked or (user.locked_until is not None and now < user.locked_until):
        raise _fail(session, user, "throttled", now)
    if user.password_hash != check.password_hash:  # changed meanwhile: check the new one
        verified = verify_password(user.password_hash, password, settings)
    if not verified:
        if user.failure_window_start is None or now - user.failure_window_start >= WINDOW:
            user.failure_window_start, user.failed_logins = now, 0
        user.failed_logins += 1
        user.locked_until = next_lock(user.failed_logins, user.failure_window_start, now, policy)
        raise _fail(session, user, "wrong password", now)
    if needs_rehash(user.password_hash, settings):
        user.password_hash = _settings_hasher(settings).hash(password)
    user.failed_logins, user.failure_window_start, user.locked_until = 0, None, None
    audit.append(
        session,
        action="auth.login",
        resource_type="user",
        actor_id=user.id,
        resource_id=user.id,
        at=now,
    )
    session.flush()
    return Principal(user_id=user.id, username=user.username, role=Role(user.role))
