"""Key rotation: a new primary data key, every stored value and file re-encrypted, audited."""

from __future__ import annotations

from dataclasses import dataclass

from clinsight.config import Settings
from clinsight.store import audit
from clinsight.store.crypto import load_keyring, reencrypt_all, rotate_key
from clinsight.store.db import create_db_engine, session_factory

__all__ = ["KeyRotation", "rotate_data_key"]


@dataclass(frozen=True)
class KeyRotation:
    """The new primary key's id and how many values and files were re-encrypted with it."""

    key_id: str
    fields: int
    files: int


def rotate_data_key(settings: Settings) -> KeyRotation:
    """Add a new primary key to the key file, re-encrypt everything with it, commit with an audit
    entry.

    Raises:
        ConfigurationError: the key file is missing or malformed.
        DecryptionError: a stored value cannot be decrypted with the key ring.
    """
    load_keyring(settings.resolved_key_file)
    keyring = rotate_key(settings.resolved_key_file)
    engine = create_db_engine(settings=settings)
    with session_factory(engine)() as session:
        report = reencrypt_all(session, keyring, settings.resolved_files_dir)
        audit.append(session, action="keys.rotate", resource_type="keyring",
                     details={"fields": report.fields, "files": report.files})  # fmt: skip
        session.commit()
    return KeyRotation(keyring.primary, report.fields, report.files)
