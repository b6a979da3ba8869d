"""File helpers below every layer: the sha256 of a file, durable atomic writes, and the
reading of a JSON or YAML mapping (specs).

An atomic write goes to a temporary file in the target's folder (`.<name>.<hex>.tmp`),
which is written, fsynced, renamed over the target and followed by an fsync of the
folder, so that after a crash or power cut the target holds either its old or its new
content, never a mixture, and a completed write is not lost. A failed write removes its
temporary file and leaves the target untouched.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import yaml

from clinsight.errors import DataError, DataNotFoundError

__all__ = [
    "atomic_writer",
    "read_mapping_file",
    "sha256_file",
    "sync_folder",
    "write_bytes_atomic",
    "write_text_atomic",
]


def sha256_file(path: Path) -> str:
    """The sha256 hex digest of a file, read in blocks (any size fits in memory).

    Raises:
        OSError: the file cannot be read (FileNotFoundError when it is missing).
    """
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def sync_folder(folder: Path) -> None:
    """fsync a folder, so that a name created or renamed in it survives a power cut."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_writer(path: Path, *, mode: int = 0o644) -> Iterator[BinaryIO]:
    """A binary handle whose content replaces `path` durably when the block ends.

    The file gets exactly `mode` (whatever the umask). The folder must exist. If the block
    raises, the temporary file is removed, `path` is left as it was and the error passes on.

    Raises:
        OSError: the folder is missing or not writable, or the disk is full.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        sync_folder(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace `path` by `data` durably (see `atomic_writer`), with mode `mode`.

    Raises:
        OSError: the folder is missing or not writable, or the disk is full.
    """
    with atomic_writer(path, mode=mode) as handle:
        handle.write(data)


def write_text_atomic(path: Path, text: str, *, mode: int = 0o644, encoding: str = "utf-8") -> None:
    """Replace `path` by `text` (encoded with `encoding`) durably, with mode `mode`.

    Raises:
        OSError: the folder is missing or not writable, or the disk is full.
    """
    write_bytes_atomic(path, text.encode(encoding), mode=mode)


def read_mapping_file(path: Path, what: str) -> Mapping[str, Any]:
    """The mapping held by a ``.json``, ``.yaml`` or ``.yml`` file; `what` names it in errors
    (e.g. "feature spec").

    Raises:
        DataNotFoundError: the file does not exist.
        DataError: the file cannot be parsed or holds no mapping at the top level.
    """
    if not path.is_file():
        raise DataNotFoundError(f"{what} {path} does not exist.")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise DataError(f"{what} {path} cannot be parsed: {exc}") from exc
    if not isinstance(data, Mapping):
        raise DataError(f"{what} {path} must hold a mapping at the top level.")
    return data
