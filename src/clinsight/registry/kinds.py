"""Every kind of model through one vocabulary: list, get, stage changes and history by
`ModelKind`, dispatched to the kind's module (``clinsight.registry.<kind>``), which is
imported only when that kind is asked for (listing NER models does not load PyTorch).

Stage changes here are the registry's half; `services.models.change_stage` is the one
audited entry point that callers use.
"""

from __future__ import annotations

import importlib
from enum import StrEnum
from pathlib import Path
from typing import Any

from clinsight.errors import RegistryError
from clinsight.registry.stages import Stage, StageChange
from clinsight.registry.versions import KindRegistry, ModelKind, RegisteredVersion

__all__ = [
    "StageAction",
    "change_stage",
    "get_version",
    "kind_registry",
    "list_versions",
    "stage_history",
    "stage_target",
]


class StageAction(StrEnum):
    """A change of stage a person asks for."""

    PROMOTE = "promote"
    ROLLBACK = "rollback"
    ARCHIVE = "archive"


def kind_registry(kind: ModelKind | str) -> KindRegistry[RegisteredVersion]:
    """The registry of `kind`, from its module's ``REGISTRY``.

    Raises:
        RegistryError: `kind` is not a model kind.
    """
    try:
        kind = ModelKind(kind)
    except ValueError:
        known = ", ".join(k.value for k in ModelKind)
        raise RegistryError(f"Unknown model kind {kind!r}; the kinds are: {known}.") from None
    registry: Any = importlib.import_module(f"clinsight.registry.{kind.value}").REGISTRY
    if not isinstance(registry, KindRegistry) or registry.kind is not kind:
        raise RegistryError(f"clinsight.registry.{kind.value} defines no REGISTRY for {kind}.")
    return registry


def list_versions(
    registry_dir: Path, kind: ModelKind | None = None, name: str | None = None
) -> list[RegisteredVersion]:
    """Every version of `kind` (every kind, in `ModelKind` order, if None), optionally of
    one `name`, by name then version.

    Raises:
        ModelNotFoundError: `name` is given but not registered as `kind`.
        IntegrityError: a version's model.json, manifest or stages.json is malformed.
    """
    kinds = [kind] if kind is not None else list(ModelKind)
    return [v for k in kinds for v in kind_registry(k).versions(registry_dir, name)]


def get_version(
    registry_dir: Path,
    kind: ModelKind,
    name: str,
    version: int | None = None,
    stage: Stage | None = None,
    *,
    verify: bool = True,
) -> RegisteredVersion:
    """One version of a model of `kind` (see `KindRegistry.get`).

    Raises:
        ModelNotFoundError: no such name, version, or version at that stage.
        IntegrityError: with `verify`, a file changed since registration.
    """
    return kind_registry(kind).get(registry_dir, name, version, stage, verify=verify)


def stage_target(
    registry_dir: Path, kind: ModelKind, name: str, action: StageAction, version: int | None
) -> int:
    """The version `action` changes: `version`, or for a rollback without one, the version
    in production before the current.

    Raises:
        RegistryError: promotion or archiving without a version.
        ModelNotFoundError: `name` is not registered, or there is nothing to roll back to.
    """
    registry = kind_registry(kind)
    if action is StageAction.ROLLBACK:
        return registry.rollback_target(registry_dir, name, version)
    if version is None:
        raise RegistryError(f"To {action} a {registry.noun}, name its version.")
    return version


def change_stage(
    registry_dir: Path,
    kind: ModelKind,
    name: str,
    action: StageAction,
    version: int | None = None,
    *,
    note: str = "",
    actor: str = "",
) -> RegisteredVersion:
    """Promote `version` to production, archive it, or roll `name` back (to `version`, by
    default the one in production before), recording `actor` in the stage history; return
    the version changed.

    Raises:
        RegistryError: promotion or archiving without a version.
        ModelNotFoundError: no such name or version, or nothing to roll back to.
        IntegrityError: the version fails verification on its way to production.
    """
    number = stage_target(registry_dir, kind, name, action, version)
    stage = Stage.ARCHIVED if action is StageAction.ARCHIVE else Stage.PRODUCTION
    if action is StageAction.ROLLBACK:
        note = note or "rollback"
    return kind_registry(kind).promote(registry_dir, name, number, stage, note=note, actor=actor)


def stage_history(registry_dir: Path, kind: ModelKind, name: str) -> list[StageChange]:
    """The stage changes of model `name` of `kind`, oldest first.

    Raises:
        ModelNotFoundError: `name` is not registered as `kind`.
    """
    return kind_registry(kind).history(registry_dir, name)
