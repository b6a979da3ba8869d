"""Verified backups: a consistent database snapshot, the registry, encrypted files, a manifest.

Layout of a backup folder::

    manifest.json          sha256 of every file, rows and a row digest per table
    database.sqlite        SQLite: `VACUUM INTO` snapshot (consistent, taken online)
    tables/<table>.jsonl   PostgreSQL: every row, read in one REPEATABLE READ READ ONLY
                           transaction (no pg_dump needed)
    registry/...           the model registry folder
    files/...              the encrypted study files (still encrypted: no key, no PHI)
    keys/data.key          the key ring, only with `include_keys=True`

Keys and data should be stored apart: without the key file a stolen backup reveals
no PHI, so the key ring is left out unless asked for and must then be kept elsewhere.
The database is snapshotted before the files are copied; files are written before
their rows commit, so every study in the snapshot has its file in the backup.

`restore_backup` verifies every sha256 in the manifest first, restores only into an
empty database and empty folders, then re-reads every row and file and compares them
with the manifest. The manifest guards against corruption and tampering by anyone who
cannot also rewrite the manifest; keep backups on write-once or access-controlled media.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, create_engine, delete, insert, inspect, select

from clinsight import __version__
from clinsight.config import Settings
from clinsight.errors import StoreError
from clinsight.files import sha256_file
from clinsight.store import audit
from clinsight.store.crypto import key_usage, load_keyring, write_private_file
from clinsight.store.db import migrate, schema_revision, session_factory
from clinsight.store.tables import Base, UTCDateTime, utcnow

__all__ = [
    "BACKUP_FORMAT",
    "MANIFEST",
    "BackupReport",
    "RestoreReport",
    "create_backup",
    "restore_backup",
    "table_digests",
    "verify_manifest",
]

BACKUP_FORMAT = 1
MANIFEST = "manifest.json"
SQLITE_SNAPSHOT = "database.sqlite"
BATCH = 1000


@dataclass(frozen=True)
class BackupReport:
    """What a backup holds: rows per table, files copied, whether the key ring is inside."""

    path: Path
    rows: dict[str, int]
    files: int
    includes_keys: bool


@dataclass(frozen=True)
class RestoreReport:
    """What a restore put back and checked: rows per table, files, the audit chain."""

    rows: dict[str, int]
    files: int
    audit_entries: int
    audit_ok: bool
    keys_restored: bool


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds")
    return value


def _row_document(table: Table, row: Any) -> dict[str, Any]:
    return {column.name: _canonical(row[column.name]) for column in table.columns}


def _iter_rows(engine: Engine, table: Table) -> Iterator[dict[str, Any]]:
    with engine.connect() as connection:
        result = connection.execute(select(table).execution_options(yield_per=BATCH))
        for row in result.mappings():
            yield _row_document(table, row)


def _digest(documents: Iterator[dict[str, Any]]) -> tuple[int, str]:
    """Row count and an order-independent digest of canonical JSON rows."""
    hashes = sorted(
        hashlib.sha256(json.dumps(d, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        for d in documents
    )
    return len(hashes), hashlib.sha256("\n".join(hashes).encode()).hexdigest()


def table_digests(engine: Engine) -> dict[str, dict[str, Any]]:
    """Rows and a content digest of every table of the schema (equal data, equal digest)."""
    out = {}
    for table in Base.metadata.sorted_tables:
        rows, digest = _digest(_iter_rows(engine, table))
        out[table.name] = {"rows": rows, "sha256": digest}
    return out


def _read_only_sqlite(path: Path) -> Engine:
    return create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")


def _is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _export_postgres(engine: Engine, folder: Path) -> dict[str, dict[str, Any]]:
    """Every table as JSON lines, read inside one repeatable-read, read-only transaction."""
    folder.mkdir(parents=True)
    tables: dict[str, dict[str, Any]] = {}
    snapshot = engine.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
    with snapshot.connect() as connection, connection.begin():
        for table in Base.metadata.sorted_tables:
            documents = []
            with (folder / f"{table.name}.jsonl").open("w", encoding="utf-8") as handle:
                result = connection.execute(select(table).execution_options(yield_per=BATCH))
                for row in result.mappings():
                    document = _row_document(table, row)
                    documents.append(document)
                    handle.write(json.dumps(document, sort_keys=True) + "\n")
            rows, digest = _digest(iter(documents))
            tables[table.name] = {"rows": rows, "sha256": digest}
    return tables


def _copy_tree(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target, ignore=shutil.ignore_patterns(".*.tmp", "*.lock"),
                        copy_function=_copy_if_present)  # fmt: skip


def _copy_if_present(source: str, target: str) -> None:
    """Copy a file unless it was removed meanwhile: the service removes the file of an
    upload it refused or could not record, which no snapshot names."""
    try:
        shutil.copy2(source, target)
    except FileNotFoundError:
        if Path(source).exists():  # the target's folder is what is missing
            raise


def _listed_files(folder: Path) -> dict[str, str]:
    return {
        path.relative_to(folder).as_posix(): sha256_file(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }


def create_backup(
    settings: Settings, engine: Engine, destination: Path, *, include_keys: bool = False
) -> BackupReport:
    """Write a verified backup of the store described by `settings` into `destination`.

    The manifest is written last, so an interrupted backup has none and cannot be restored.

    Raises:
        StoreError: `destination` exists and is not empty, or the schema is not migrated.
        ConfigurationError: `include_keys` and the key file is missing or unsafe.
    """
    if destination.exists() and any(destination.iterdir()):
        raise StoreError(f"backup folder {destination} is not empty; choose a new folder")
    revision = schema_revision(engine)
    if revision is None:
        raise StoreError("the database has no schema; run `clinsight db migrate` first")
    destination.mkdir(parents=True, exist_ok=True, mode=0o700)
    if _is_sqlite(engine):
        snapshot = destination / SQLITE_SNAPSHOT
        raw = engine.raw_connection()  # autocommit: VACUUM cannot run inside BEGIN
        try:
            raw.cursor().execute("VACUUM INTO ?", (str(snapshot),))
        finally:
            raw.close()
        copy = _read_only_sqlite(snapshot)
        try:
            tables = table_digests(copy)
        finally:
            copy.dispose()
    else:
        tables = _export_postgres(engine, destination / "tables")
    _copy_tree(settings.resolved_registry_dir, destination / "registry")
    _copy_tree(settings.resolved_files_dir, destination / "files")
    if include_keys:
        keyring_file = settings.resolved_key_file
        load_keyring(keyring_file)  # refuse to back up a missing, unsafe or malformed ring
        write_private_file(destination / "keys" / "data.key", keyring_file.read_bytes())
    files = _listed_files(destination)
    manifest = {
        "format": BACKUP_FORMAT,
        "clinsight_version": __version__,
        "created_at": utcnow().isoformat(timespec="seconds"),
        "backend": engine.dialect.name,
        "schema_revision": revision,
        "includes_keys": include_keys,
        "tables": tables,
        "files": files,
    }
    write_private_file(destination / MANIFEST, json.dumps(manifest, indent=2).encode("utf-8"))
    rows = {name: int(t["rows"]) for name, t in tables.items()}
    n_files = sum(1 for name in files if name.startswith(("files/", "registry/")))
    return BackupReport(destination, rows, n_files, include_keys)


def verify_manifest(source: Path) -> dict[str, Any]:
    """Check every file of a backup against its manifest and return the manifest.

    Raises:
        StoreError: no manifest, an unknown format, or a file missing, added or altered.
    """
    path = source / MANIFEST
    if not path.is_file():
        raise StoreError(f"{source} has no {MANIFEST}: it is not a complete Clinsight backup")
    try:
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        listed: dict[str, str] = dict(manifest["files"])
        tables: dict[str, Any] = dict(manifest["tables"])
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"{path} is malformed ({exc}); the backup cannot be trusted") from exc
    if manifest.get("format") != BACKUP_FORMAT:
        raise StoreError(f"backup format {manifest.get('format')!r} is not {BACKUP_FORMAT}")
    found = _listed_files(source)
    problems = [f"{name} is missing" for name in sorted(listed.keys() - found.keys())]
    problems += [f"{name} is not in the manifest" for name in sorted(found.keys() - listed.keys())]
    problems += [
        f"{name} was altered (sha256 differs)"
        for name in sorted(listed.keys() & found.keys())
        if listed[name] != found[name]
    ]
    expected_tables = {t.name for t in Base.metadata.sorted_tables}
    if set(tables) != expected_tables:
        problems.append(
            f"the manifest lists tables {sorted(tables)}, not {sorted(expected_tables)}"
        )
    if problems:
        shown = "; ".join(problems[:5]) + (
            f"; and {len(problems) - 5} more" if problems[5:] else ""
        )
        raise StoreError(f"backup {source} failed verification, refusing to restore: {shown}")
    return manifest


def _check_empty(settings: Settings, engine: Engine) -> None:
    if inspect(engine).get_table_names():
        raise StoreError("the target database is not empty; restore into a new, empty database")
    for folder in (settings.resolved_registry_dir, settings.resolved_files_dir):
        if folder.exists() and any(folder.iterdir()):
            raise StoreError(f"target folder {folder} is not empty; restore into an empty home")


def _source_rows(source: Path, manifest: dict[str, Any], table: Table) -> Iterator[dict[str, Any]]:
    """The backed-up rows of `table` in canonical form (timestamps as ISO strings)."""
    if manifest["backend"] == "sqlite":
        snapshot = _read_only_sqlite(source / SQLITE_SNAPSHOT)
        try:
            yield from _iter_rows(snapshot, table)
        finally:
            snapshot.dispose()
        return
    with (source / "tables" / f"{table.name}.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            yield json.loads(line)


def _decode(stamps: frozenset[str], document: dict[str, Any]) -> dict[str, Any]:
    return {
        key: datetime.fromisoformat(value) if key in stamps and value is not None else value
        for key, value in document.items()
    }


def _load_rows(source: Path, manifest: dict[str, Any], engine: Engine) -> None:
    migrate(engine, manifest["schema_revision"])
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):  # drop rows seeded by migrations
            connection.execute(delete(table))
        for table in Base.metadata.sorted_tables:
            stamps = frozenset(c.name for c in table.columns if isinstance(c.type, UTCDateTime))
            batch: list[dict[str, Any]] = []
            for document in _source_rows(source, manifest, table):
                batch.append(_decode(stamps, document))
                if len(batch) >= BATCH:
                    connection.execute(insert(table), batch)
                    batch = []
            if batch:
                connection.execute(insert(table), batch)


def _restore_files(source: Path, settings: Settings, manifest: dict[str, Any]) -> int:
    targets = {"registry": settings.resolved_registry_dir, "files": settings.resolved_files_dir}
    count = 0
    for name, digest in manifest["files"].items():
        top, _, rest = name.partition("/")
        if top not in targets:
            continue
        target = targets[top] / rest
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, target)
        if sha256_file(target) != digest:
            raise StoreError(f"restored file {target} does not match the manifest; disk error?")
        count += 1
    return count


def restore_backup(settings: Settings, engine: Engine, source: Path) -> RestoreReport:
    """Verify a backup, restore it into the empty store of `settings`, and check the result.

    The key ring is restored only if the backup holds it and the target has none;
    otherwise the target's key file must be the one the data was encrypted with.

    Raises:
        StoreError: the backup fails verification, the target is not empty, or a restored
            row or file differs from the manifest.
        ConfigurationError: the key ring is missing or lacks a key the data uses.
    """
    manifest = verify_manifest(source)
    _check_empty(settings, engine)
    keys_restored = False
    key_file = settings.resolved_key_file
    if manifest["includes_keys"] and not key_file.exists():
        write_private_file(key_file, (source / "keys" / "data.key").read_bytes())
        keys_restored = True
    keyring = load_keyring(key_file)
    _load_rows(source, manifest, engine)
    files = _restore_files(source, settings, manifest)
    restored = table_digests(engine)
    wrong = [name for name, t in manifest["tables"].items() if restored[name] != t]
    if wrong:
        raise StoreError(f"restored tables {wrong} differ from the backup; do not use this store")
    with session_factory(engine)() as session:
        missing = set(key_usage(session, settings.resolved_files_dir)) - set(keyring.data_keys)
        chain = audit.verify(session)
    if missing:
        raise StoreError(
            f"the key ring {key_file} lacks keys {sorted(missing)} that the data was encrypted "
            "with; restore the matching key file"
        )
    rows = {name: int(t["rows"]) for name, t in manifest["tables"].items()}
    return RestoreReport(rows, files, chain.entries, chain.ok, keys_restored)
