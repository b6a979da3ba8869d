"""Restore drill on both backends: back up a populated store, restore it into a fresh one,
compare every row and file, verify the audit chain; tampered backups are refused."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from clinsight.cli import app
from clinsight.cli import output as cli_output
from clinsight.config import Settings, get_settings
from clinsight.errors import ConfigurationError, StoreError
from clinsight.security.access import grant_break_glass
from clinsight.security.clinical import add_study, read_study, record_feedback, record_prediction
from clinsight.security.records import create_patient
from clinsight.security.tokens import TokenIssuer
from clinsight.store import audit, db
from clinsight.store.backup import MANIFEST, create_backup, restore_backup, table_digests
from clinsight.store.crypto import KeyRing, load_keyring, load_or_create_keyring
from clinsight.store.repositories import StoreContext
from clinsight.store.tables import Base, Verdict
from tests.support.store import DRAFT, MakeContext, People, draft_labels

PATIENTS = [("MRN-1", "Ada Lovelace", "female"), ("MRN-2", "Alan Turing", "male")]


def _populate(people: People, context: MakeContext, keyring: KeyRing, settings: Settings) -> None:
    """Users, patients, studies with files, predictions, feedback, break-glass, sessions, audit."""
    ctx = context(people.alice)
    for index, (mrn, name, sex) in enumerate(PATIENTS):
        patient = create_patient(ctx, mrn=mrn, name=name, birth_date=date(1815, 12, 10), sex=sex)
        for shot in range(2):
            study = add_study(ctx, patient.id, f"image {index}-{shot}".encode(), modality="CR")
            made = record_prediction(ctx, study.id, DRAFT)
            record_feedback(
                ctx, made.id, Verdict.OVERRIDE, labels=draft_labels, reason="rib",
                override_label="normal",
            )  # fmt: skip
    ctx.session.commit()
    grant_break_glass(ctx.session, keyring, settings, people.bob, patient.id, "emergency room now")
    TokenIssuer.from_settings(settings, keyring).start_session(ctx.session, people.alice)
    ctx.session.commit()
    registry = settings.resolved_registry_dir / "breastmnist" / "1"
    registry.mkdir(parents=True)
    (registry / "model.onnx").write_bytes(b"\x08\x07onnx graph")
    (registry / "card.md").write_text("# breastmnist 1\n")


def _rows(engine: sa.Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as connection:
        return {
            t.name: sorted(tuple(r) for r in connection.execute(sa.select(t)))
            for t in Base.metadata.sorted_tables
        }


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


@contextmanager
def _fresh_engine(
    engine: sa.Engine, request: pytest.FixtureRequest, path: Path
) -> Iterator[sa.Engine]:
    """An empty database of the same backend as `engine`."""
    if engine.dialect.name == "sqlite":
        target = db.create_db_engine(f"sqlite:///{path / 'restored.db'}")
        yield target
        target.dispose()
        return
    url = request.getfixturevalue("postgres_url")
    schema = f"clinsight_restore_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    target = db.create_db_engine(f"{url}?options=-csearch_path%3D{schema}")
    try:
        yield target
    finally:
        target.dispose()
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _fresh_settings(home: Path) -> Settings:
    return Settings(home=home, password_hash_time_cost=1, password_hash_memory_kib=1024)


def test_restore_drill_matches_every_row_and_file(
    engine: sa.Engine, people: People, context: MakeContext, keyring: KeyRing,
    settings: Settings, tmp_path: Path, request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    _populate(people, context, keyring, settings)
    report = create_backup(settings, engine, tmp_path / "backup", include_keys=True)
    assert report.files == 4 + 2  # four encrypted studies, two registry files
    assert report.rows["studies"] == report.rows["predictions"] == report.rows["feedback"] == 4
    assert report.rows["patients"] == 2
    assert report.rows["users"] == 4
    manifest = json.loads((tmp_path / "backup" / MANIFEST).read_text())
    assert manifest["backend"] == engine.dialect.name
    assert manifest["includes_keys"] is True
    target_settings = _fresh_settings(tmp_path / "home2")
    with _fresh_engine(engine, request, tmp_path) as target:
        restored = restore_backup(target_settings, target, tmp_path / "backup")
        assert restored.keys_restored
        assert restored.audit_ok
        assert restored.rows == report.rows
        assert restored.files == 6
        assert _rows(target) == _rows(engine)  # every row, every column
        assert table_digests(target) == table_digests(engine) == manifest["tables"]
        assert _files(target_settings.resolved_files_dir) == _files(settings.resolved_files_dir)
        assert _files(target_settings.resolved_registry_dir) == _files(
            settings.resolved_registry_dir
        )
        assert target_settings.resolved_key_file.read_bytes() == (
            settings.resolved_key_file.read_bytes()
        )
        assert target_settings.resolved_key_file.stat().st_mode & 0o777 == 0o600
        with db.session_factory(target)() as session:
            chain = audit.verify(session)
            assert chain.ok
            assert chain.entries == restored.audit_entries > 0
        # the restored store decrypts: the study file reads back through the restored key ring
        with db.session_factory(target)() as session:
            ctx = StoreContext(session, load_keyring(target_settings.resolved_key_file),
                               target_settings.resolved_files_dir, people.alice)  # fmt: skip
            study_id = _rows(target)["studies"][0][0]
            assert read_study(ctx, study_id)[1].startswith(b"image ")
        with pytest.raises(StoreError, match="target database is not empty"):
            restore_backup(target_settings, target, tmp_path / "backup")


def test_a_file_removed_while_the_backup_copies_is_left_out(
    engine: sa.Engine, people: People, context: MakeContext, keyring: KeyRing,
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    _populate(people, context, keyring, settings)
    refused = settings.resolved_files_dir / "ab" / "refused-upload.enc"  # staged, no row
    refused.parent.mkdir(exist_ok=True)
    refused.write_bytes(b"never recorded")
    patterns = shutil.ignore_patterns

    def listed_then_removed(*globs: str) -> Any:  # the copy has listed the folder
        ignore = patterns(*globs)

        def service_removes_it_meanwhile(folder: str, names: list[str]) -> set[str]:
            if Path(folder) == refused.parent:
                refused.unlink(missing_ok=True)
            return ignore(folder, names)

        return service_removes_it_meanwhile

    monkeypatch.setattr(shutil, "ignore_patterns", listed_then_removed)
    report = create_backup(settings, engine, tmp_path / "backup")
    assert report.files == 4 + 2
    assert not (tmp_path / "backup" / "files" / "ab" / "refused-upload.enc").exists()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("alter", r"files/.+\.enc was altered \(sha256 differs\)"),
        ("delete", r"files/.+\.enc is missing"),
        ("add", r"files/extra\.bin is not in the manifest"),
        ("manifest", r"has no manifest\.json: it is not a complete Clinsight backup"),
    ],
)
def test_tampered_backup_is_refused_before_anything_is_written(
    engine: sa.Engine, people: People, context: MakeContext, keyring: KeyRing,
    settings: Settings, tmp_path: Path, damage: str, message: str,
) -> None:  # fmt: skip
    _populate(people, context, keyring, settings)
    backup = tmp_path / "backup"
    create_backup(settings, engine, backup)
    victim = next((backup / "files").rglob("*.enc"))
    if damage == "alter":
        blob = bytearray(victim.read_bytes())
        blob[-1] ^= 1
        victim.write_bytes(bytes(blob))
    elif damage == "delete":
        victim.unlink()
    elif damage == "add":
        (backup / "files" / "extra.bin").write_bytes(b"x")
    else:
        (backup / MANIFEST).unlink()
    target_settings = _fresh_settings(tmp_path / "home2")
    target = db.create_db_engine(f"sqlite:///{tmp_path / 'restored.db'}")
    with pytest.raises(StoreError, match=message):
        restore_backup(target_settings, target, backup)
    assert sa.inspect(target).get_table_names() == []
    assert not target_settings.resolved_files_dir.exists()
    target.dispose()


def test_backup_without_keys_needs_the_key_file_apart(
    engine: sa.Engine, people: People, context: MakeContext, keyring: KeyRing,
    settings: Settings, tmp_path: Path,
) -> None:  # fmt: skip
    _populate(people, context, keyring, settings)
    backup = tmp_path / "backup"
    create_backup(settings, engine, backup)
    assert not (backup / "keys").exists()
    with pytest.raises(StoreError, match="is not empty; choose a new folder"):
        create_backup(settings, engine, backup)
    target_settings = _fresh_settings(tmp_path / "home2")
    target = db.create_db_engine(f"sqlite:///{tmp_path / 'restored.db'}")
    with pytest.raises(ConfigurationError, match=r"data\.key does not exist"):
        restore_backup(target_settings, target, backup)
    target_settings.resolved_key_file.parent.mkdir(parents=True)
    shutil.copy2(settings.resolved_key_file, target_settings.resolved_key_file)
    report = restore_backup(target_settings, target, backup)
    assert not report.keys_restored
    assert report.audit_ok
    target.dispose()


def test_cli_backup_and_restore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_output.console, "width", 300)
    monkeypatch.setattr(cli_output.err_console, "width", 300)
    monkeypatch.setenv("CLINSIGHT_PASSWORD_HASH_MEMORY_KIB", "1024")
    get_settings.cache_clear()
    load_or_create_keyring(get_settings())
    runner = CliRunner()
    made = runner.invoke(app, ["users", "create", "carol", "--password", "correct horse battery"])
    assert made.exit_code == 0, made.output
    out = runner.invoke(app, ["backup", str(tmp_path / "b"), "--include-keys"])
    assert out.exit_code == 0, out.output
    assert "(with the key file)" in out.output
    monkeypatch.setenv("CLINSIGHT_HOME", str(tmp_path / "other"))
    get_settings.cache_clear()
    back = runner.invoke(app, ["restore", str(tmp_path / "b")])
    assert back.exit_code == 0, back.output
    assert "audit chain intact (1 entries)" in back.output
    (tmp_path / "b" / MANIFEST).write_text("{}")
    refused = runner.invoke(app, ["restore", str(tmp_path / "b")])
    assert refused.exit_code != 0
    assert "malformed" in refused.output
