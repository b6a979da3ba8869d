"""Life-cycle stages of registered models and their history, kept in <name>/stages.json.

Version folders are hashed and immutable, so a model's stages live beside them in one
small JSON file: the current stage of each version and every change with its time, note
and actor (who made it; entries written before actors were recorded have none).
Callers hold the registry lock while they read, change and write it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from clinsight.errors import IntegrityError
from clinsight.files import write_text_atomic
from clinsight.registry.manifest import json_text, locked, read_json
from clinsight.registry.mirror import mirror_for

__all__ = [
    "STAGES_FILE",
    "Stage",
    "StageChange",
    "change_stage",
    "previous_production",
    "read_stages",
    "record_stage",
    "stage_history",
    "stages_stamp",
    "utc_now",
    "write_stages",
]

STAGES_FILE = "stages.json"


class Stage(StrEnum):
    """Life-cycle stage of a model version; at most one version per name is in production."""

    CANDIDATE = "candidate"
    PRODUCTION = "production"
    ARCHIVED = "archived"


@dataclass(frozen=True)
class StageChange:
    """One entry of a model's stage history (`from_stage` is None at registration; `actor`
    is "" where none was recorded)."""

    version: int
    from_stage: Stage | None
    to_stage: Stage
    at: str
    note: str = ""
    actor: str = ""


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def read_stages(root: Path) -> dict[str, Any]:
    """The stage state of the model folder `root` (empty when nothing was recorded).

    Raises:
        IntegrityError: stages.json is unreadable or malformed.
    """
    path = root / STAGES_FILE
    if not path.exists():
        return {"versions": {}, "history": []}
    state = read_json(path)
    if not (
        isinstance(state, dict)
        and isinstance(state.get("versions"), dict)
        and isinstance(state.get("history"), list)
    ):
        raise IntegrityError(f"{path} is malformed; restore it from a backup.")
    return state


def record_stage(
    state: dict[str, Any], version: int, stage: Stage, note: str, actor: str = ""
) -> None:
    """Set `version` to `stage` in `state` and append the change (by `actor`) to its history."""
    previous = state["versions"].get(str(version))
    state["versions"][str(version)] = stage.value
    entry = {"version": version, "from": previous, "to": stage.value, "at": utc_now()}
    state["history"].append({**entry, "note": note, "actor": actor})


def write_stages(root: Path, state: dict[str, Any]) -> None:
    """Write the stage state of the model folder `root` atomically: to the shared registry
    first where one is mirrored (`registry.mirror`), so a write that cannot reach it changes
    nothing.

    Raises:
        RegistryError: the shared registry cannot be written.
    """
    text = json_text(state)
    mirror = mirror_for(root)
    if mirror is not None:
        mirror.put_stages(root, text)
    write_text_atomic(root / STAGES_FILE, text)


def stages_stamp(root: Path) -> tuple[int, int] | None:
    """A cheap fingerprint of the model folder's stages.json, (inode, mtime in ns), or None
    when it is missing. It changes whenever a version is registered or changes stage
    (stages.json is replaced atomically, so every change gives a new inode)."""
    try:
        info = (root / STAGES_FILE).stat()
    except OSError:
        return None
    return (info.st_ino, info.st_mtime_ns)


def stage_history(state: dict[str, Any]) -> list[StageChange]:
    """The recorded changes, oldest first."""
    return [
        StageChange(
            version=int(entry["version"]),
            from_stage=Stage(entry["from"]) if entry["from"] else None,
            to_stage=Stage(entry["to"]),
            at=entry["at"],
            note=entry.get("note", ""),
            actor=entry.get("actor", ""),
        )
        for entry in state["history"]
    ]


def change_stage(root: Path, version: int, target: Stage, note: str, actor: str = "") -> bool:
    """Under the model's lock, move `version` to `target` on behalf of `actor`; entering
    production archives the version in production before (at most one per name). Return
    whether anything changed (nothing is recorded if it is already at `target`). Callers
    check that the version exists (and verify it) first.

    Raises:
        RegistryError: the lock is held by another process for over a minute.
        IntegrityError: stages.json is malformed.
    """
    with locked(root):
        if (mirror := mirror_for(root)) is not None:
            mirror.pull_model(root)
        state = read_stages(root)
        if state["versions"].get(str(version), Stage.CANDIDATE.value) == target.value:
            return False
        if target is Stage.PRODUCTION:
            for other, other_stage in list(state["versions"].items()):
                if other_stage == Stage.PRODUCTION.value and int(other) != version:
                    replaced = f"replaced by v{version}"
                    record_stage(state, int(other), Stage.ARCHIVED, replaced, actor)
        record_stage(state, version, target, note, actor)
        write_stages(root, state)
        return True


def previous_production(root: Path) -> int | None:
    """The version most recently in production that is not in production now (for rollback).

    Raises:
        IntegrityError: stages.json is malformed.
    """
    state = read_stages(root)
    current = {int(v) for v, s in state["versions"].items() if s == Stage.PRODUCTION.value}
    earlier = [
        c.version
        for c in stage_history(state)
        if c.to_stage is Stage.PRODUCTION and c.version not in current
    ]
    return earlier[-1] if earlier else None
