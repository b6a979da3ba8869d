"""Account use cases: create, list, disable / enable, reset the password, change the role
(by an admin through the API or the web, or locally on the server with `clinsight users`).

Each use case owns its transaction: the change and its audit entry are committed together.
From the command line the actor is the admin named with ``--as``, or the operating-system
account (recorded as ``os:<login>``, flagged as unauthenticated), as for stage changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.orm import Session

from clinsight.config import Settings
from clinsight.errors import RecordNotFoundError
from clinsight.security import admin
from clinsight.security.records import create_user, find_user
from clinsight.services.models import command_line_actor
from clinsight.store.accounts import Account, account_of
from clinsight.store.actors import Principal
from clinsight.store.crypto import load_keyring
from clinsight.store.db import create_db_engine, migrate, session_factory
from clinsight.store.repositories import StoreContext, UserRecord
from clinsight.store.roles import Role

__all__ = [
    "PasswordReset",
    "account_id",
    "change_account_role",
    "create_account",
    "create_local_account",
    "list_users",
    "local_admin",
    "reset_account_password",
    "set_account_active",
]

T = TypeVar("T")


@dataclass(frozen=True)
class PasswordReset:
    """A reset account and its temporary password (shown once to the admin, never stored)."""

    account: Account
    temporary_password: str


def create_account(
    session: Session,
    settings: Settings,
    *,
    username: str,
    password: str,
    role: Role,
    actor: Principal | None,
) -> UserRecord:
    """Create an account and commit it with its audit entry (`actor` None: local administration).

    Raises:
        PermissionDeniedError: the actor is not an admin.
        DataError: the username or password breaks the account rules.
        DuplicateRecordError: the username is taken.
    """
    record = create_user(
        session, settings, username=username, password=password, role=role, actor=actor
    )
    session.commit()
    return record


def create_local_account(
    settings: Settings, *, username: str, password: str, role: Role
) -> UserRecord:
    """Create an account from the server itself (`clinsight users create`), schema upgraded first.

    Raises:
        DataError: the username or password breaks the account rules.
        DuplicateRecordError: the username is taken.
        StoreError: the database cannot be opened or migrated.
    """
    engine = create_db_engine(settings=settings)
    migrate(engine)
    with session_factory(engine)() as session:
        return create_account(
            session, settings, username=username, password=password, role=role, actor=None
        )


def list_users(ctx: StoreContext, *, limit: int = 100) -> list[Account]:
    """Accounts by username with role, active, locked and created (admins; no password
    hashes). Committed.

    Raises:
        PermissionDeniedError: the actor is not an admin.
    """
    found = admin.list_accounts(ctx, limit=limit)
    ctx.session.commit()
    return found


def account_id(session: Session, username: str) -> str:
    """The id of the account named `username` (normalised like a login).

    Raises:
        RecordNotFoundError: no account has this name.
    """
    user = find_user(session, username)
    if user is None:
        raise RecordNotFoundError(f"no account is named {username!r}; check the list of users")
    return user.id


def set_account_active(ctx: StoreContext, user_id: str, *, active: bool) -> Account:
    """Disable an account (its sessions end at once) or enable it again. Committed.

    Raises:
        PermissionDeniedError: the actor is not an admin, or disables themselves or the
            last active admin.
        RecordNotFoundError: no such account.
    """
    account = admin.set_active(ctx, user_id, active=active)
    ctx.session.commit()
    return account


def reset_account_password(ctx: StoreContext, settings: Settings, user_id: str) -> PasswordReset:
    """A new temporary password for an account; its lockout is cleared and its sessions
    end. Committed.

    Raises:
        PermissionDeniedError: the actor is not an admin.
        RecordNotFoundError: no such account.
    """
    password = admin.reset_password(ctx, settings, user_id)
    ctx.session.commit()
    return PasswordReset(account_of(ctx.session, user_id), password)


def change_account_role(ctx: StoreContext, user_id: str, role: Role) -> Account:
    """Give an account another role (its sessions end). Committed.

    Raises:
        PermissionDeniedError: the actor is not an admin, or demotes themselves or the last
            active admin.
        RecordNotFoundError: no such account.
    """
    account = admin.change_role(ctx, user_id, role)
    ctx.session.commit()
    return account


@contextmanager
def _local(settings: Settings) -> Iterator[Session]:
    engine = create_db_engine(settings=settings)
    try:
        migrate(engine)
        with session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


def local_admin(
    settings: Settings, as_user: str | None, action: str, use: Callable[[StoreContext], T]
) -> T:
    """Run `use` from the server itself (`clinsight users ...`, `clinsight care-team ...`)
    as the admin named `as_user`, else as the operating-system account ``os:<login>``
    (audited under that name and flagged as unauthenticated, as `clinsight models` does;
    every audit entry of `use` says it came from the command line). Schema upgraded first.

    Raises:
        RecordNotFoundError, PermissionDeniedError: `as_user` is no active admin account.
        StoreError: the database cannot be opened or migrated.
    """
    with _local(settings) as session:
        who = command_line_actor(session, as_user, action)
        actor = Principal(who.actor_id, who.label, Role.ADMIN)
        keyring = load_keyring(settings.resolved_key_file)
        files = settings.resolved_files_dir
        return use(StoreContext(session, keyring, files, actor, audit_details=who.details))
