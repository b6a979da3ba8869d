"""Engine configuration and the migrations, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from clinsight.errors import ConfigurationError
from clinsight.store import db
from clinsight.store.tables import Base

TABLES = {
    "alembic_version",
    "audit_head",
    "audit_log",
    "auth_sessions",
    "break_glass_grants",
    "care_team",
    "feedback",
    "notes",
    "patients",
    "predictions",
    "refresh_tokens",
    "studies",
    "users",
}


def test_migrations_build_the_schema_from_empty(empty_engine: sa.Engine) -> None:
    assert db.schema_revision(empty_engine) is None
    db.migrate(empty_engine)
    db.migrate(empty_engine)  # a second run is a no-op
    assert db.schema_revision(empty_engine) == "0002"
    assert set(sa.inspect(empty_engine).get_table_names()) == TABLES
    with empty_engine.connect() as connection:
        head = connection.execute(sa.text("SELECT id, seq, hash FROM audit_head")).all()
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    assert head == [(1, 0, "0" * 64)]


def test_audit_log_refuses_update_and_delete(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO audit_log (seq, at, action, resource_type, outcome, details,"
                " break_glass, prev_hash, hash) VALUES (1, :at, 'x', 'y', 'success', '{}',"
                " false, :h, :h)"
            ),
            {"at": "2026-01-01 00:00:00", "h": "0" * 64},
        )
    for statement in ("UPDATE audit_log SET action = 'z'", "DELETE FROM audit_log"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as connection:
            connection.execute(sa.text(statement))


def test_sqlite_connections_are_durable(tmp_path: Path) -> None:
    engine = db.create_db_engine(f"sqlite:///{tmp_path / 'sub' / 'x.db'}")
    with engine.connect() as connection:
        pragmas = {
            name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
        }
    engine.dispose()
    assert pragmas == {
        "journal_mode": "wal",
        "synchronous": 2,
        "foreign_keys": 1,
        "busy_timeout": 30000,
    }


def test_default_url_is_sqlite_in_home(settings: object, tmp_path: Path) -> None:
    engine = db.create_db_engine()
    assert engine.url.database == str(tmp_path / "home" / "clinsight.db")
    engine.dispose()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgresql://u@h:5432/d", "postgresql+psycopg://u@h:5432/d"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ],
)
def test_normalise_database_url(url: str, expected: str) -> None:
    assert db.normalise_database_url(url) == expected


def test_unsupported_backend_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="'mysql' is not supported"):
        db.normalise_database_url("mysql://u@h/d")
