"""Account use cases: create an account (by an admin, or locally on the server) and list them.

Each use case owns its transaction: the account and its audit entry are committed together.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from clinsight.config import Settings
from clinsight.security.access import require_role
from clinsight.security.records import create_user
from clinsight.store.actors import Principal
from clinsight.store.db import create_db_engine, migrate, session_factory
from clinsight.store.repositories import StoreContext, UserRecord
from clinsight.store.roles import Role
from clinsight.store.tables import User

__all__ = ["create_account", "create_local_account", "list_users"]


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


def list_users(ctx: StoreContext, *, limit: int = 100) -> list[UserRecord]:
    """Accounts by username, at most 100 (admins only; no password hashes).

    Raises:
        PermissionDeniedError: the actor is not an admin.
    """
    require_role(ctx.session, ctx.actor, "user.list", Role.ADMIN)
    rows = ctx.session.execute(
        select(User).order_by(User.username).limit(max(1, min(limit, 100)))
    ).scalars()
    found = [UserRecord(u.id, u.username, Role(u.role), u.active) for u in rows]
    ctx.session.commit()
    return found
