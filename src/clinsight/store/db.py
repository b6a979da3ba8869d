"""Engine and sessions for the embedded SQLite store or PostgreSQL, and schema migrations.

SQLite runs in WAL mode with synchronous=FULL, foreign keys on and a busy timeout,
and every transaction starts with BEGIN IMMEDIATE: nearly every unit of work
appends to the audit chain, so taking the write lock up front avoids deadlocks
between readers that later write. PostgreSQL goes through psycopg 3.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from clinsight.config import Settings, get_settings
from clinsight.errors import ConfigurationError

__all__ = [
    "MIGRATIONS_DIR",
    "create_db_engine",
    "migrate",
    "normalise_database_url",
    "schema_revision",
    "session_factory",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000


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


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


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
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions bound to `engine` whose objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


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
