"""Uploads held, encrypted, while the clinician confirms them (a DICOM naming another patient).

A held file sits in ``<files>/held/<token>.enc``, encrypted for the actor, the patient and the
token together: another clinician, or the same token for another patient, cannot read it.
Held files older than `HOLD_SECONDS` are removed when the next one is held.
"""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path

from clinsight.errors import DecryptionError, RecordNotFoundError
from clinsight.store.actors import Principal
from clinsight.store.crypto import KeyRing, read_encrypted_file, write_encrypted_file

__all__ = ["HOLD_SECONDS", "drop_held_upload", "hold_upload", "read_held_upload"]

HOLD_SECONDS = 3600
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{22}$")
_GONE = "this upload is no longer held (it expired or was cancelled); upload the file again"


def _path(files_dir: Path, token: str) -> Path:
    if not _TOKEN.match(token):
        raise RecordNotFoundError(_GONE)
    return files_dir / "held" / f"{token}.enc"


def _file_id(actor: Principal, patient_id: str, token: str) -> str:
    return f"held:{actor.user_id}:{patient_id}:{token}"


def hold_upload(
    keyring: KeyRing, files_dir: Path, actor: Principal, patient_id: str, content: bytes
) -> str:
    """Keep an upload encrypted for `actor` and the patient; the token that names it."""
    folder = files_dir / "held"
    folder.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - HOLD_SECONDS
    for old in folder.glob("*.enc"):
        if old.stat().st_mtime < cutoff:
            old.unlink(missing_ok=True)
    token = secrets.token_urlsafe(16)
    write_encrypted_file(keyring, _path(files_dir, token), content,
                         file_id=_file_id(actor, patient_id, token), new=True)  # fmt: skip
    return token


def read_held_upload(
    keyring: KeyRing, files_dir: Path, actor: Principal, patient_id: str, token: str
) -> bytes:
    """The held upload's content (it stays held until `drop_held_upload`).

    Raises:
        RecordNotFoundError: no upload is held under this token for this actor and patient.
    """
    try:
        return read_encrypted_file(keyring, _path(files_dir, token),
                                   file_id=_file_id(actor, patient_id, token))  # fmt: skip
    except DecryptionError as exc:
        raise RecordNotFoundError(_GONE) from exc


def drop_held_upload(files_dir: Path, token: str) -> None:
    """Forget a held upload (confirmed and stored, or cancelled)."""
    _path(files_dir, token).unlink(missing_ok=True)
