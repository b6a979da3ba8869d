"""Engine and sessions for the embedded SQLite store or PostgreSQL, and schema migrations.

SQLite runs in WAL mode with synchronous=FULL, foreign keys on and a busy timeout,
and every transaction starts with BEGIN IMMEDIATE: nearly every unit of work
appends to the audit chain, so taking the write lock up front avoids deadlocks
between readers that later write (sessions from `read_session_factory` only read, and
skip the lock). The threads of one process queue for that lock on
a `WriteGate` first: a waiting thread wakes the moment the lock is free, instead of
polling SQLite's busy handler, whose sleeps grow to 100 ms and starve unlucky
requests under load. PostgreSQL goes through psycopg 3.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from clinsight.config import Settings, get_settings
from clinsight.errors import ConfigurationError, DuplicateRecordError, StoreError

__all__ = [
    "MIGRATIONS_DIR",
    "WriteGate",
    "create_db_engine",
    "flush_unique",
    "migrate",
    "normalise_database_url",
    "read_session_factory",
    "schema_revision",
    "session_factory",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
READ_ONLY = "clinsight_read_only"


def normalise_database_url(url: str) -> str:
    """Route PostgreSQL URLs through psycopg 3; accept SQLite as is.

    Raises:
        ConfigurationError: the URL names a backend other than SQLite or PostgreSQL.
    """
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    backend = make_url(url).get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigurationError(
            f"database backend {backend!r} is not supported; use sqlite:/// or postgresql://"
        )
    return url


class WriteGate:
    """The queue for one SQLite database's write lock: threads queue on a lock, processes
    (several service workers) on an advisory file lock beside the database."""

    _gates: ClassVar[dict[str, WriteGate]] = {}
    _gates_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, timeout_s: float, lock_file: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._timeout_s = timeout_s
        self._lock_file = lock_file
        self._fd: int | None = None
        self._fd_pid = 0

    @classmethod
    def for_database(cls, database: str, timeout_s: float) -> WriteGate:
        """The process-wide gate of a database file (engines on one file share it; every
        in-memory database is its own)."""
        if database in ("", ":memory:"):
            return cls(timeout_s)
        path = Path(database).resolve()
        with cls._gates_lock:
            key = str(path)
            if key not in cls._gates:
                cls._gates[key] = cls(timeout_s, path.with_name(path.name + "-gate"))
            return cls._gates[key]

    def _file_descriptor(self) -> int:
        if self._fd is None or self._fd_pid != os.getpid():  # a forked child opens its own
            assert self._lock_file is not None  # only called with a lock file
            self._fd = os.open(self._lock_file, os.O_RDWR | os.O_CREAT, 0o600)
            self._fd_pid = os.getpid()
        return self._fd

    def enter(self) -> None:
        """Wait for the turn to write.

        Raises:
            StoreError: another transaction held the database for the whole busy timeout.
        """
        deadline = time.monotonic() + self._timeout_s
        if not self._lock.acquire(timeout=self._timeout_s):
            raise self._busy()
        if self._lock_file is None:
            return
        try:
            fd = self._file_descriptor()
            while True:  # other processes: poll finely (SQLite's own backoff sleeps to 100 ms)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise self._busy() from None
                    time.sleep(0.0005)
        except BaseException:
            self._lock.release()
            raise

    def leave(self) -> None:
        """Hand the turn to the next waiting thread or process."""
        try:
            if self._fd is not None and self._fd_pid == os.getpid():
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._lock.release()

    def _busy(self) -> StoreError:
        return StoreError(
            f"the database stayed busy for {self._timeout_s:.0f} s; retry the request"
        )


class _GatedConnection(sqlite3.Connection):
    """A SQLite connection that leaves its `WriteGate` when its transaction ends."""

    gate: WriteGate | None = None
    inside = False
    query_only = False

    def begin_immediate(self) -> None:
        if self.gate is not None:
            self.gate.enter()
            self.inside = True
        try:
            self.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._leave()
            raise

    def _leave(self) -> None:
        if self.inside and self.gate is not None:
            self.inside = False
            self.gate.leave()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._leave()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._leave()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._leave()


def _configure_sqlite(engine: Engine, gate: WriteGate) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself
        dbapi_connection.gate = gate
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        dbapi_connection = connection.connection.dbapi_connection
        assert isinstance(dbapi_connection, _GatedConnection)  # set at connect
        read_only = bool(connection.get_execution_options().get(READ_ONLY))
        if read_only != dbapi_connection.query_only:  # switch only when the mode changes
            dbapi_connection.execute(f"PRAGMA query_only={'ON' if read_only else 'OFF'}")
            dbapi_connection.query_only = read_only
        if read_only:  # a snapshot read: no write lock, no queue; a write in it fails loudly
            dbapi_connection.execute("BEGIN")
        else:
            dbapi_connection.begin_immediate()


def create_db_engine(url: str | None = None, *, settings: Settings | None = None) -> Engine:
    """An engine for `url` (default: `Settings.resolved_database_url`), configured for safety.

    Raises:
        ConfigurationError: the URL names an unsupported backend.
    """
    settings = settings or get_settings()
    url = normalise_database_url(url or settings.resolved_database_url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        timeout_s = SQLITE_BUSY_TIMEOUT_MS / 1000
        engine = create_engine(
            url, connect_args={"timeout": timeout_s, "factory": _GatedConnection}
        )
        _configure_sqlite(engine, WriteGate.for_database(parsed.database or ":memory:", timeout_s))
        return engine
    return create_engine(url, pool_pre_ping=True)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions bound to `engine` whose objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


def flush_unique(session: Session, duplicate: str) -> None:
    """Flush the new rows; a unique constraint they break becomes `DuplicateRecordError`.

    Check-then-insert is not enough on PostgreSQL, where two transactions can both pass
    the check; the constraint decides, and the loser gets the same answer as a plain
    duplicate.

    Raises:
        DuplicateRecordError: a unique constraint refused the rows (message `duplicate`).
    """
    try:
        session.flush()
    except sa_exc.IntegrityError as exc:
        if not _is_unique_violation(exc):
            raise
        raise DuplicateRecordError(duplicate) from exc


def _is_unique_violation(exc: sa_exc.IntegrityError) -> bool:
    if getattr(exc.orig, "sqlstate", None) == "23505":  # psycopg: unique_violation
        return True
    return getattr(exc.orig, "sqlite_errorname", None) == "SQLITE_CONSTRAINT_UNIQUE"


def read_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for reads only. On SQLite they read a snapshot without taking the write lock
    (WAL readers never wait for writers) and refuse to write; on PostgreSQL they are
    ordinary sessions."""
    return sessionmaker(engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False)


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to `revision` with the packaged Alembic migrations."""
    with engine.begin() as connection:
        command.upgrade(_alembic_config(connection), revision)


def schema_revision(engine: Engine) -> str | None:
    """The migration revision the database is at (None for an empty database)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
