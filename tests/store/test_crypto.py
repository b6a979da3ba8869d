"""AES-256-GCM envelope, key ring file, blind index and key rotation."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from clinsight.config import Settings
from clinsight.errors import ConfigurationError, DecryptionError
from clinsight.security.clinical import add_study, read_study, record_feedback, record_prediction
from clinsight.security.records import create_patient
from clinsight.store import crypto
from clinsight.store.crypto import KeyRing
from clinsight.store.tables import Verdict
from tests.support.store import DRAFT, MakeContext, People, draft_labels

WHERE = {"table": "patients", "column": "name_ct", "row_id": "row-1"}


def test_field_round_trip_carries_its_key_id() -> None:
    ring = KeyRing.generate()
    token = ring.encrypt_field("Ada Lovelace", **WHERE)
    version, kid, nonce, ct = token.split(":")
    assert (version, kid) == ("v1", ring.primary)
    assert len(crypto._unb64(nonce)) == 12
    assert len(crypto._unb64(ct)) == len("Ada Lovelace") + 16
    assert crypto.field_key_id(token) == ring.primary
    assert ring.decrypt_field(token, **WHERE) == "Ada Lovelace"
    assert ring.encrypt_field("Ada Lovelace", **WHERE) != token  # fresh nonce


@pytest.mark.parametrize(
    "moved",
    [
        {"table": "patients", "column": "name_ct", "row_id": "row-2"},
        {"table": "patients", "column": "mrn_ct", "row_id": "row-1"},
        {"table": "feedback", "column": "name_ct", "row_id": "row-1"},
    ],
)
def test_ciphertext_is_bound_to_table_column_and_row(moved: dict[str, str]) -> None:
    ring = KeyRing.generate()
    token = ring.encrypt_field("Ada Lovelace", **WHERE)
    with pytest.raises(DecryptionError, match="altered, or copied from another row or column"):
        ring.decrypt_field(token, **moved)


def test_altered_or_foreign_ciphertext_is_refused() -> None:
    ring = KeyRing.generate()
    version, kid, nonce, ct = ring.encrypt_field("x", **WHERE).split(":")
    flipped = crypto._b64(bytes([crypto._unb64(ct)[0] ^ 1]) + crypto._unb64(ct)[1:])
    with pytest.raises(DecryptionError, match="fails authentication"):
        ring.decrypt_field(":".join([version, kid, nonce, flipped]), **WHERE)
    with pytest.raises(DecryptionError, match="not in the key ring"):
        KeyRing.generate().decrypt_field(":".join([version, kid, nonce, ct]), **WHERE)
    with pytest.raises(DecryptionError, match="not a v1 ciphertext"):
        ring.decrypt_field("Ada Lovelace", **WHERE)


def test_file_envelope_round_trip(tmp_path: Path) -> None:
    ring = KeyRing.generate()
    path = tmp_path / "ab" / "study.enc"
    crypto.write_encrypted_file(ring, path, b"DICM pixels", file_id="study-1")
    blob = path.read_bytes()
    assert blob.startswith(b"CSE1" + bytes([8]) + ring.primary.encode())
    assert b"pixels" not in blob
    assert path.stat().st_mode & 0o777 == 0o600
    assert crypto.read_encrypted_file(ring, path, file_id="study-1") == b"DICM pixels"
    with pytest.raises(DecryptionError, match="altered or renamed"):
        crypto.read_encrypted_file(ring, path, file_id="study-2")
    with pytest.raises(DecryptionError, match="missing CSE1 header"):
        ring.decrypt_bytes(b"plain", file_id="study-1")


def test_a_new_file_is_written_in_place_and_never_over_another(tmp_path: Path) -> None:
    ring = KeyRing.generate()
    path = tmp_path / "cd" / "study.enc"
    crypto.write_encrypted_file(ring, path, b"new pixels", file_id="study-3", new=True)
    assert sorted(p.name for p in path.parent.iterdir()) == ["study.enc"]  # no temporary
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert crypto.read_encrypted_file(ring, path, file_id="study-3") == b"new pixels"
    with pytest.raises(FileExistsError):
        crypto.write_encrypted_file(ring, path, b"other", file_id="study-3", new=True)
    assert crypto.read_encrypted_file(ring, path, file_id="study-3") == b"new pixels"
    crypto.write_encrypted_file(ring, path, b"replaced", file_id="study-3")  # atomic replace
    assert crypto.read_encrypted_file(ring, path, file_id="study-3") == b"replaced"


def test_blind_index_is_keyed_and_normalised() -> None:
    ring = KeyRing.generate()
    assert ring.blind_index(" mrn-0001 ") == ring.blind_index("MRN-0001")
    assert ring.blind_index("MRN-0001") != ring.blind_index("MRN-0002")
    assert ring.blind_index("MRN-0001") != KeyRing.generate().blind_index("MRN-0001")
    assert len(ring.blind_index("MRN-0001")) == 64


def test_key_file_is_created_private_and_reloaded(settings: Settings) -> None:
    path = settings.resolved_key_file
    assert not path.exists()
    ring = crypto.load_or_create_keyring(settings)
    assert path == settings.home / "keys" / "data.key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert crypto.load_or_create_keyring(settings) == ring
    assert set(json.loads(path.read_text())) == {
        "format",
        "primary",
        "data_keys",
        "index_key",
        "token_key",
    }


def test_unsafe_missing_or_malformed_key_file_is_refused(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = settings.resolved_key_file
    crypto.load_or_create_keyring(settings)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigurationError, match=r"mode 644.*chmod 600"):
        crypto.load_keyring(path)
    os.chmod(path, 0o600)
    path.write_text("{}")
    with pytest.raises(ConfigurationError, match="malformed"):
        crypto.load_keyring(path)
    path.unlink()
    monkeypatch.setattr(settings, "environment", "production")
    with pytest.raises(ConfigurationError, match="does not exist"):
        crypto.load_or_create_keyring(settings)


def _raw_dump(session: Session) -> str:
    parts = []
    for table in ("patients", "feedback", "break_glass_grants"):
        parts += [repr(row) for row in session.execute(sa.text(f"SELECT * FROM {table}"))]
    return "\n".join(parts)


def test_rotation_reencrypts_every_column_and_file(
    sessions: sessionmaker[Session],
    settings: Settings,
    people: People,
    context: MakeContext,
) -> None:
    ctx = context(people.alice)
    patient = create_patient(
        ctx, mrn="MRN-7", name="Grace Hopper", birth_date=date(1906, 12, 9), sex="female"
    )
    study = add_study(ctx, patient.id, b"image bytes", modality="CR")
    prediction = record_prediction(ctx, study.id, DRAFT)
    record_feedback(
        ctx, prediction.id, Verdict.OVERRIDE, labels=draft_labels, reason="rib fracture",
        override_label="normal",
    )  # fmt: skip
    ctx.session.commit()
    old = crypto.load_keyring(settings.resolved_key_file)
    files = settings.resolved_files_dir
    with sessions() as session:
        assert crypto.key_usage(session, files) == {old.primary: 6}

    new = crypto.rotate_key(settings.resolved_key_file)
    assert new.primary != old.primary
    assert set(new.data_keys) == {old.primary, new.primary}
    with sessions() as session:
        report = crypto.reencrypt_all(session, new, files)
        session.commit()
    assert report == crypto.RotationReport(fields=5, files=1)
    with sessions() as session:
        assert crypto.key_usage(session, files) == {new.primary: 6}
        assert old.primary not in _raw_dump(session)
        assert crypto.reencrypt_all(session, new, files) == crypto.RotationReport(0, 0)
    reader = type(ctx)(sessions(), new, files, people.alice)
    assert read_study(reader, study.id)[1] == b"image bytes"
    reader.session.close()
