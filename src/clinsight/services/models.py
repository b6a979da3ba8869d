"""Use case: change the stage of a registered model of any kind — promote, roll back,
archive — audited and attributed, whoever asks (API, web or command line).

The audit entry is appended first, in a transaction that holds the chain's head, then
the registry changes, then the transaction commits: stage changes are audited in the
order they happen, and a change the registry refuses leaves no entry. The actor is
recorded twice: in the audit entry (an account id, or ``os:<login>``) and in the model's
stage history (a username, or ``os:<login>``).
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar, cast

from sqlalchemy.orm import Session

from clinsight.config import Settings
from clinsight.errors import PermissionDeniedError, RecordNotFoundError
from clinsight.registry.kinds import StageAction, kind_registry, stage_target
from clinsight.registry.kinds import change_stage as change_registry_stage
from clinsight.registry.stages import Stage
from clinsight.registry.versions import ModelKind, RegisteredVersion
from clinsight.security.access import require_role
from clinsight.security.records import find_user
from clinsight.store import audit
from clinsight.store.actors import Principal
from clinsight.store.audit import Scalar
from clinsight.store.db import create_db_engine, migrate, session_factory
from clinsight.store.roles import Role

__all__ = [
    "StageActor",
    "change_stage",
    "change_stage_locally",
    "command_line_actor",
    "promote_trained",
]

V = TypeVar("V", bound=RegisteredVersion)

_STAGE = {StageAction.PROMOTE: Stage.PRODUCTION, StageAction.ARCHIVE: Stage.ARCHIVED}


@dataclass(frozen=True)
class StageActor:
    """Who changes a stage: `actor_id` for the audit entry, `label` for the stage history,
    and `details` the audit entry adds (how the change came, and how the actor is known)."""

    actor_id: str
    label: str
    details: Mapping[str, Scalar] = field(default_factory=dict)

    @classmethod
    def of(cls, principal: Principal, **details: Scalar) -> StageActor:
        """An authenticated account (the API and the web check the admin role first)."""
        return cls(principal.user_id, principal.username, details)


def _os_login() -> str:
    """The operating-system account running this process (from the password database)."""
    return pwd.getpwuid(os.getuid()).pw_name


def command_line_actor(session: Session, username: str | None, action: str) -> StageActor:
    """The actor of a command-line stage change: the admin account `username` (the API
    needs an admin too), else the operating-system account, flagged as unauthenticated.

    Raises:
        RecordNotFoundError: no account is named `username`.
        PermissionDeniedError: the account is deactivated or not an admin (audited).
    """
    login = _os_login()
    if username is None:
        actor = f"os:{login}"[:36]
        return StageActor(actor, actor, {"via": "cli", "unauthenticated_os_account": True})
    user = find_user(session, username)
    if user is None:
        raise RecordNotFoundError(
            f"no account is named {username!r}; give an admin's username with --as, "
            f"or create one with `clinsight users create NAME --role admin`"
        )
    if not user.active:
        raise PermissionDeniedError(f"account {user.username!r} is deactivated")
    principal = Principal(user.id, user.username, user.role)
    require_role(session, principal, action, Role.ADMIN)
    return StageActor.of(principal, via="cli", os_user=login)


def change_stage(
    session: Session,
    registry_dir: Path,
    actor: StageActor,
    kind: ModelKind,
    name: str,
    action: StageAction,
    version: int | None = None,
    *,
    note: str = "",
) -> RegisteredVersion:
    """Promote `version` of model `name` of `kind` to production, archive it, or roll the
    model back (to `version`, by default the one in production before); audit it as
    ``model.<action>`` on ``<resource>`` ``name:version``, record `actor` in the stage
    history, commit, and return the version changed.

    Raises:
        RegistryError: promotion or archiving without a version.
        ModelNotFoundError: no such model or version, or nothing to roll back to.
        IntegrityError: the version fails verification on its way to production.
    """
    number = stage_target(registry_dir, kind, name, action, version)
    stage = _STAGE.get(action)
    details = {**({"stage": str(stage)} if stage else {}), **actor.details}
    audit.append(
        session, action=f"model.{action}", resource_type=kind_registry(kind).resource,
        actor_id=actor.actor_id, resource_id=f"{name}:{number}", details=details or None,
    )  # fmt: skip
    try:
        changed = change_registry_stage(
            registry_dir, kind, name, action, number, note=note, actor=actor.label
        )
    except BaseException:
        session.rollback()
        raise
    session.commit()
    return changed


def change_stage_locally(
    settings: Settings,
    kind: ModelKind,
    name: str,
    action: StageAction,
    version: int | None = None,
    *,
    as_user: str | None = None,
    note: str = "",
) -> RegisteredVersion:
    """`change_stage` from the server itself (`clinsight models ...`, training commands'
    ``--promote``), attributed by `command_line_actor` (schema upgraded first).

    Raises:
        RecordNotFoundError, PermissionDeniedError: `as_user` is no active admin account.
        RegistryError, ModelNotFoundError, IntegrityError: as `change_stage`.
        StoreError: the database cannot be opened or migrated.
    """
    engine = create_db_engine(settings=settings)
    try:
        migrate(engine)
        with session_factory(engine)() as session:
            actor = command_line_actor(session, as_user, f"model.{action}")
            registry = settings.resolved_registry_dir
            return change_stage(session, registry, actor, kind, name, action, version, note=note)
    finally:
        engine.dispose()


def promote_trained(settings: Settings, version: V, as_user: str | None) -> V:
    """Put a version a training command just registered into production (its ``--promote``
    or ``--production``), audited like `clinsight models promote`; the promoted version.

    Raises:
        as `change_stage_locally`.
    """
    promoted = change_stage_locally(
        settings, version.kind, version.name, StageAction.PROMOTE, version.version,
        as_user=as_user, note="trained",
    )  # fmt: skip
    return cast(V, promoted)
