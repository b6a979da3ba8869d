"""Life-cycle stages of registered models and their history, kept in <name>/stages.json.

Version folders are hashed and immutable, so a model's stages live beside them in one
small JSON file: the current stage of each version and every change with its time.
Callers hold the registry lock while they read, change and write it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from clinsight.errors import IntegrityError
from clinsight.registry.manifest import read_json, write_json

__all__ = [
    "STAGES_FILE",
    "Stage",
    "StageChange",
    "read_stages",
    "record_stage",
    "stage_history",
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
    """One entry of a model's stage history (`from_stage` is None at registration)."""

    version: int
    from_stage: Stage | None
    to_stage: Stage
    at: str
    note: str = ""


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


def record_stage(state: dict[str, Any], version: int, stage: Stage, note: str) -> None:
    """Set `version` to `stage` in `state` and append the change to its history."""
    previous = state["versions"].get(str(version))
    state["versions"][str(version)] = stage.value
    state["history"].append(
        {"version": version, "from": previous, "to": stage.value, "at": utc_now(), "note": note}
    )


def write_stages(root: Path, state: dict[str, Any]) -> None:
    """Write the stage state of the model folder `root` atomically."""
    write_json(root / STAGES_FILE, state)


def stage_history(state: dict[str, Any]) -> list[StageChange]:
    """The recorded changes, oldest first."""
    return [
        StageChange(
            version=int(entry["version"]),
            from_stage=Stage(entry["from"]) if entry["from"] else None,
            to_stage=Stage(entry["to"]),
            at=entry["at"],
            note=entry.get("note", ""),
        )
        for entry in state["history"]
    ]
