"""Safe files for the registry: sha256 manifests, durable atomic JSON writes and folder locks.

A manifest lists the sha256 of every file in a folder (but itself) and names the
artifact whose sha256 identifies the model. Verification fails on any missing,
added or changed file. The lock (a file lock, released if its process dies) serialises
writers of one model across processes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any

import filelock
import numpy as np

from clinsight.errors import IntegrityError, RegistryError
from clinsight.files import sha256_file, write_text_atomic

__all__ = [
    "MANIFEST_FILE",
    "json_ready",
    "json_text",
    "locked",
    "read_json",
    "verify_manifest",
    "write_json",
    "write_manifest",
]

MANIFEST_FILE = "manifest.json"
LOCK_TIMEOUT_S = 60.0


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold the exclusive lock of `folder` (folder/.lock) for the duration of the block.

    Raises:
        RegistryError: another process held the lock for over a minute.
    """
    try:
        with filelock.FileLock(folder / ".lock", timeout=LOCK_TIMEOUT_S):
            yield
    except filelock.Timeout:
        raise RegistryError(
            f"Another process has held the registry lock {folder / '.lock'} for over "
            f"{LOCK_TIMEOUT_S:.0f} s; wait for it to finish and try again."
        ) from None


def json_ready(value: Any) -> Any:
    """`value` as plain JSON types: numpy values converted, NaN and infinities as null.

    Raises:
        RegistryError: `value` holds an object JSON cannot represent.
    """
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [json_ready(v) for v in value]
    if isinstance(value, np.generic):
        return json_ready(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, str | int | bool):
        return value
    raise RegistryError(f"Cannot store {type(value).__name__} {value!r} as JSON; pass plain data.")


def json_text(data: Any) -> str:
    """`data` as the registry writes JSON: indented, with a final newline.

    Raises:
        ValueError: `data` holds NaN or an infinity.
    """
    return json.dumps(data, indent=2, allow_nan=False) + "\n"


def write_json(path: Path, data: Any) -> None:
    """Write JSON (mode 0644) durably and atomically (see `clinsight.files`).

    Raises:
        ValueError: `data` holds NaN or an infinity.
    """
    write_text_atomic(path, json_text(data))


def read_json(path: Path) -> Any:
    """Parse a JSON file of the registry.

    Raises:
        IntegrityError: the file is missing or is not valid JSON.
    """
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IntegrityError(f"{path} is missing; the registry folder is incomplete.") from None
    except (OSError, ValueError) as exc:
        raise IntegrityError(f"{path} cannot be read as JSON ({exc}).") from exc


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST_FILE)


def write_manifest(folder: Path, artifact: str) -> str:
    """Write folder/manifest.json and return the sha256 of `artifact` (a file in `folder`)."""
    files = {p.relative_to(folder).as_posix(): sha256_file(p) for p in _files(folder)}
    write_json(
        folder / MANIFEST_FILE,
        {"format": 1, "artifact": artifact, "artifact_sha256": files[artifact], "files": files},
    )
    return files[artifact]


def verify_manifest(folder: Path) -> str:
    """Check every file of `folder` against its manifest; return the artifact sha256.

    Raises:
        IntegrityError: the manifest is missing or malformed, or a file is missing, extra
            or changed.
    """
    manifest = read_json(folder / MANIFEST_FILE)
    recorded = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(recorded, dict) or manifest.get("artifact") not in recorded:
        raise IntegrityError(f"{folder / MANIFEST_FILE} is malformed; register the model again.")
    present = {p.relative_to(folder).as_posix() for p in _files(folder)}
    if missing := sorted(set(recorded) - present):
        raise IntegrityError(f"{folder} lacks {', '.join(missing)} listed in its manifest.")
    if extra := sorted(present - set(recorded)):
        raise IntegrityError(f"{folder} holds files not in its manifest: {', '.join(extra)}.")
    for relative, expected in recorded.items():
        actual = sha256_file(folder / relative)
        if actual != expected:
            raise IntegrityError(
                f"{folder / relative} has sha256 {actual}, but the manifest records {expected}: "
                f"the file changed after registration. Restore it or register the model again."
            )
    artifact_sha256: str = recorded[manifest["artifact"]]
    if manifest.get("artifact_sha256") != artifact_sha256:
        raise IntegrityError(f"{folder / MANIFEST_FILE}: artifact_sha256 contradicts its files.")
    return artifact_sha256
