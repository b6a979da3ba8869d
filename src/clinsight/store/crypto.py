"""AES-256-GCM envelope for PHI columns and files, the key ring file, and key rotation.

A column value is `v1:<kid>:<nonce b64>:<ciphertext b64>`; a file starts with
`CSE1`, one byte of key-id length, the key id and the 12-byte nonce. The associated
data binds every ciphertext to its table, column and row (or file id), so a value
copied to another row or column no longer decrypts. The key ring file (mode 0600)
holds the data keys (one primary), the blind-index key and the token key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from clinsight.config import Settings
from clinsight.errors import ConfigurationError, DecryptionError
from clinsight.files import sync_folder, write_bytes_atomic
from clinsight.store.tables import Base, Study, encrypted_columns

__all__ = [
    "KeyRing",
    "RotationReport",
    "field_key_id",
    "file_key_id",
    "key_usage",
    "load_keyring",
    "load_or_create_keyring",
    "read_encrypted_file",
    "reencrypt_all",
    "rotate_key",
    "save_keyring",
    "write_encrypted_file",
    "write_new_private_file",
    "write_private_file",
]

FIELD_VERSION = "v1"
FILE_MAGIC = b"CSE1"
KEY_BYTES = 32
NONCE_BYTES = 12
KEYRING_FORMAT = 1


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


@dataclass(frozen=True)
class KeyRing:
    """The data keys by id (`primary` encrypts), the blind-index key and the token key."""

    primary: str
    data_keys: dict[str, bytes] = field(repr=False)
    index_key: bytes = field(repr=False)
    token_key: bytes = field(repr=False)

    @classmethod
    def generate(cls) -> KeyRing:
        """A fresh ring with one random data key."""
        kid = secrets.token_hex(4)
        return cls(
            primary=kid,
            data_keys={kid: AESGCM.generate_key(bit_length=256)},
            index_key=secrets.token_bytes(KEY_BYTES),
            token_key=secrets.token_bytes(KEY_BYTES),
        )

    def with_new_primary(self) -> KeyRing:
        """A copy with a new random data key as primary; old keys stay for decryption."""
        kid = secrets.token_hex(4)
        while kid in self.data_keys:
            kid = secrets.token_hex(4)
        keys = {**self.data_keys, kid: AESGCM.generate_key(bit_length=256)}
        return replace(self, primary=kid, data_keys=keys)

    def _key(self, kid: str) -> AESGCM:
        if kid not in self.data_keys:
            raise DecryptionError(
                f"ciphertext uses key id {kid!r}, which is not in the key ring; "
                "restore the key file that was used to write it"
            )
        return AESGCM(self.data_keys[kid])

    def encrypt_field(self, plaintext: str, *, table: str, column: str, row_id: str) -> str:
        """Encrypt a column value under the primary key, bound to its table, column and row."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        aad = f"{table}.{column}:{row_id}".encode()
        ct = self._key(self.primary).encrypt(nonce, plaintext.encode("utf-8"), aad)
        return f"{FIELD_VERSION}:{self.primary}:{_b64(nonce)}:{_b64(ct)}"

    def decrypt_field(self, token: str, *, table: str, column: str, row_id: str) -> str:
        """Decrypt a column value written by `encrypt_field` for the same table, column and row.

        Raises:
            DecryptionError: unknown format or key id, or the value was altered or moved.
        """
        parts = token.split(":")
        if len(parts) != 4 or parts[0] != FIELD_VERSION:
            raise DecryptionError(f"{table}.{column} of row {row_id} is not a v1 ciphertext")
        aad = f"{table}.{column}:{row_id}".encode()
        try:
            plain = self._key(parts[1]).decrypt(_unb64(parts[2]), _unb64(parts[3]), aad)
        except (InvalidTag, ValueError) as exc:
            raise DecryptionError(
                f"{table}.{column} of row {row_id} fails authentication: it was altered, "
                "or copied from another row or column"
            ) from exc
        return plain.decode("utf-8")

    def encrypt_bytes(self, data: bytes, *, file_id: str) -> bytes:
        """Encrypt file content under the primary key, bound to `file_id`."""
        kid = self.primary.encode("ascii")
        nonce = secrets.token_bytes(NONCE_BYTES)
        ct = self._key(self.primary).encrypt(nonce, data, f"file:{file_id}".encode())
        return FILE_MAGIC + bytes([len(kid)]) + kid + nonce + ct

    def decrypt_bytes(self, blob: bytes, *, file_id: str) -> bytes:
        """Decrypt file content written by `encrypt_bytes` for the same `file_id`.

        Raises:
            DecryptionError: not a Clinsight encrypted file, unknown key, or altered content.
        """
        kid = file_key_id(blob)
        start = len(FILE_MAGIC) + 1 + len(kid)
        nonce, ct = blob[start : start + NONCE_BYTES], blob[start + NONCE_BYTES :]
        try:
            return self._key(kid).decrypt(nonce, ct, f"file:{file_id}".encode())
        except InvalidTag as exc:
            raise DecryptionError(
                f"encrypted file {file_id} fails authentication: it was altered or renamed"
            ) from exc

    def blind_index(self, value: str) -> str:
        """Keyed HMAC-SHA256 of a normalised identifier: equality lookup without plaintext."""
        normalised = value.strip().upper().encode("utf-8")
        return hmac.new(self.index_key, normalised, hashlib.sha256).hexdigest()


def field_key_id(token: str) -> str:
    """The key id a column ciphertext was written with.

    Raises:
        DecryptionError: the value is not a v1 ciphertext.
    """
    parts = token.split(":")
    if len(parts) != 4 or parts[0] != FIELD_VERSION:
        raise DecryptionError("value is not a v1 ciphertext (expected v1:<kid>:<nonce>:<ct>)")
    return parts[1]


def file_key_id(blob: bytes) -> str:
    """The key id an encrypted file was written with.

    Raises:
        DecryptionError: the content does not start with the Clinsight file header.
    """
    if not blob.startswith(FILE_MAGIC) or len(blob) < len(FILE_MAGIC) + 1:
        raise DecryptionError("file is not a Clinsight encrypted file (missing CSE1 header)")
    size = blob[len(FILE_MAGIC)]
    return blob[len(FILE_MAGIC) + 1 : len(FILE_MAGIC) + 1 + size].decode("ascii")


def write_private_file(path: Path, data: bytes) -> None:
    """Write `data` atomically to `path` with mode 0600 (parent folder 0700 when created);
    the file and its folder are fsynced before this returns."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_bytes_atomic(path, data, mode=0o600)


def write_new_private_file(path: Path, data: bytes) -> None:
    """Create `path`, which must not exist yet, with mode 0600 (parent folder 0700 when
    created): written in place (no temporary file, no rename), the file and its folder
    fsynced before this returns. A crash midway leaves a partial file that nothing names.

    Raises:
        FileExistsError: `path` exists.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    sync_folder(path.parent)


def save_keyring(keyring: KeyRing, path: Path) -> None:
    """Write the key ring to `path` (mode 0600, atomic replace)."""
    document = {
        "format": KEYRING_FORMAT,
        "primary": keyring.primary,
        "data_keys": {kid: _b64(key) for kid, key in keyring.data_keys.items()},
        "index_key": _b64(keyring.index_key),
        "token_key": _b64(keyring.token_key),
    }
    write_private_file(path, json.dumps(document, indent=2).encode("utf-8"))


def load_keyring(path: Path) -> KeyRing:
    """Read the key ring file, refusing one that other users can read.

    Raises:
        ConfigurationError: the file is missing, readable by group/others, or malformed.
    """
    if not path.is_file():
        raise ConfigurationError(
            f"key file {path} does not exist: on a new installation run `clinsight serve` "
            "once to create it; otherwise restore it from backup or set CLINSIGHT_KEY_FILE"
        )
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ConfigurationError(
            f"key file {path} has mode {mode:o}, readable by other users; run chmod 600 on it"
        )
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        keyring = KeyRing(
            primary=doc["primary"],
            data_keys={kid: _unb64(key) for kid, key in doc["data_keys"].items()},
            index_key=_unb64(doc["index_key"]),
            token_key=_unb64(doc["token_key"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigurationError(f"key file {path} is malformed ({exc}); restore it") from exc
    if doc.get("format") != KEYRING_FORMAT or keyring.primary not in keyring.data_keys:
        raise ConfigurationError(f"key file {path} is not a format-1 key ring with its primary")
    if any(len(k) != KEY_BYTES for k in (*keyring.data_keys.values(), keyring.index_key)):
        raise ConfigurationError(f"key file {path} holds a key that is not 256 bits")
    return keyring


def load_or_create_keyring(settings: Settings) -> KeyRing:
    """Load the key ring; in development create it on first run (production never does).

    Raises:
        ConfigurationError: the file is missing in production, unsafe or malformed.
    """
    path = settings.resolved_key_file
    if not path.exists() and settings.environment == "development":
        save_keyring(KeyRing.generate(), path)
    return load_keyring(path)


def rotate_key(path: Path) -> KeyRing:
    """Add a new primary data key to the key ring file and return the new ring.

    Raises:
        ConfigurationError: the key file is missing, unsafe or malformed.
    """
    keyring = load_keyring(path).with_new_primary()
    save_keyring(keyring, path)
    return keyring


def write_encrypted_file(
    keyring: KeyRing, path: Path, data: bytes, *, file_id: str, new: bool = False
) -> None:
    """Encrypt `data` for `file_id` and write it with mode 0600, durably: replacing `path`
    atomically, or, when `new`, creating it (see `write_new_private_file`).

    Raises:
        FileExistsError: `new` and `path` exists.
    """
    blob = keyring.encrypt_bytes(data, file_id=file_id)
    if new:
        write_new_private_file(path, blob)
    else:
        write_private_file(path, blob)


def read_encrypted_file(keyring: KeyRing, path: Path, *, file_id: str) -> bytes:
    """Read and decrypt a file written by `write_encrypted_file`.

    Raises:
        DecryptionError: the file is missing, unknown key, or its content was altered.
    """
    if not path.is_file():
        raise DecryptionError(f"encrypted file for {file_id} is missing; restore it from backup")
    return keyring.decrypt_bytes(path.read_bytes(), file_id=file_id)


@dataclass(frozen=True)
class RotationReport:
    """How many column values and files `reencrypt_all` rewrote."""

    fields: int
    files: int


def reencrypt_all(session: Session, keyring: KeyRing, files_dir: Path) -> RotationReport:
    """Rewrite every ciphertext not under the primary key (columns and study files).

    The caller commits; files are replaced atomically one by one, so a crash leaves
    each file readable under either key.

    Raises:
        DecryptionError: a value or file cannot be decrypted with the ring.
    """
    fields = 0
    for table_name, columns in encrypted_columns().items():
        table = Base.metadata.tables[table_name]
        pk = next(iter(table.primary_key.columns))
        rows = session.execute(select(pk, *(table.c[c] for c in columns))).all()
        for row in rows:
            row_id = str(row[0])
            changes: dict[str, str] = {}
            for column, token in zip(columns, row[1:], strict=True):
                if token is None or field_key_id(token) == keyring.primary:
                    continue
                where = {"table": table_name, "column": column, "row_id": row_id}
                changes[column] = keyring.encrypt_field(
                    keyring.decrypt_field(token, **where), **where
                )
            if changes:
                session.execute(update(table).where(pk == row[0]).values(**changes))
                fields += len(changes)
    files = 0
    for study_id, blob_key in session.execute(select(Study.id, Study.blob_key)).all():
        path = files_dir / blob_key
        if not path.is_file():
            raise DecryptionError(f"file of study {study_id} is missing; restore it from backup")
        blob = path.read_bytes()
        if file_key_id(blob) != keyring.primary:
            data = keyring.decrypt_bytes(blob, file_id=study_id)
            write_encrypted_file(keyring, path, data, file_id=study_id)
            files += 1
    return RotationReport(fields=fields, files=files)


def key_usage(session: Session, files_dir: Path) -> dict[str, int]:
    """How many column values and files each key id encrypts (to check an old key is unused)."""
    counts: Counter[str] = Counter()
    for table_name, columns in encrypted_columns().items():
        table = Base.metadata.tables[table_name]
        for row in session.execute(select(*(table.c[c] for c in columns))).all():
            counts.update(field_key_id(token) for token in row if token is not None)
    for (blob_key,) in session.execute(select(Study.blob_key)).all():
        path = files_dir / blob_key
        if path.is_file():
            with path.open("rb") as handle:
                counts[file_key_id(handle.read(64))] += 1
    return dict(counts)
