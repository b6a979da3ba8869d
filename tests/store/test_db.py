"""Engine configuration and the migrations, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from clinsight.errors import ConfigurationError, StoreError
from clinsight.store import db
from clinsight.store.tables import Base

TABLES = {
    "assessments",
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
    "recommendation_feedback",
    "refresh_tokens",
    "signed_reports",
    "segmentations",
    "studies",
    "users",
}


def test_migrations_build_the_schema_from_empty(empty_engine: sa.Engine) -> None:
    assert db.schema_revision(empty_engine) is None
    db.migrate(empty_engine)
    db.migrate(empty_engine)  # a second run is a no-op
    assert db.schema_revision(empty_engine) == "0012"
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


def test_sqlite_writers_queue_on_the_gate_and_never_overlap(tmp_path: Path) -> None:
    engine = db.create_db_engine(f"sqlite:///{tmp_path / 'gate.db'}")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE log (who INTEGER, step INTEGER)")
    inside: list[int] = []
    overlaps: list[int] = []

    def writer(who: int) -> None:
        for step in range(20):
            with engine.begin() as connection:
                inside.append(who)
                if len(inside) > 1:
                    overlaps.append(who)
                connection.exec_driver_sql(f"INSERT INTO log VALUES ({who}, {step})")
                time.sleep(0.0005)
                inside.remove(who)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM log").scalar_one() == 160
    assert overlaps == []
    assert (tmp_path / "gate.db-gate").exists()  # the lock file other processes queue on


def test_a_writer_stuck_past_the_timeout_gets_a_clear_error(tmp_path: Path) -> None:
    gate = db.WriteGate(timeout_s=0.2, lock_file=tmp_path / "x.db-gate")
    gate.enter()
    failed: list[Exception] = []

    def late() -> None:
        try:
            gate.enter()
        except StoreError as exc:
            failed.append(exc)

    waiter = threading.Thread(target=late)
    waiter.start()
    waiter.join()
    assert "busy for 0 s; retry" in str(failed[0])
    gate.leave()
    gate.enter()  # free again once left
    gate.leave()


def test_read_sessions_see_committed_rows_skip_the_gate_and_refuse_writes(tmp_path: Path) -> None:
    engine = db.create_db_engine(f"sqlite:///{tmp_path / 'r.db'}")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        connection.exec_driver_sql("INSERT INTO t VALUES (1)")
    reads, writes = db.read_session_factory(engine), db.session_factory(engine)
    with writes() as writer, reads() as reader:
        writer.execute(sa.text("INSERT INTO t VALUES (2)"))  # holds the write lock
        assert reader.execute(sa.text("SELECT count(*) FROM t")).scalar_one() == 1
        with pytest.raises(sa.exc.OperationalError, match="readonly"):
            reader.execute(sa.text("INSERT INTO t VALUES (3)"))
        writer.commit()
    with writes() as writer:  # the same pooled connection writes again afterwards
        writer.execute(sa.text("INSERT INTO t VALUES (4)"))
        writer.commit()
        assert writer.execute(sa.text("SELECT count(*) FROM t")).scalar_one() == 3


def test_migration_0004_keeps_the_newest_verdict_of_each_clinician_current(
    empty_engine: sa.Engine,
) -> None:
    db.migrate(empty_engine, "0003")
    at = "2026-11-30 10:00:0{}"
    rows = [  # (id, user, created) on one prediction: two of u1, one of u2
        ("f1", "u1", at.format(1)), ("f2", "u1", at.format(2)), ("f3", "u2", at.format(1)),
    ]  # fmt: skip
    statements = [
        "INSERT INTO users (id, username, role, password_hash, active, failed_logins,"
        " created_at) VALUES ('u1', 'a', 'clinician', 'h', true, 0, :t),"
        " ('u2', 'b', 'clinician', 'h', true, 0, :t)",
        "INSERT INTO patients (id, mrn_index, mrn_ct, name_ct, birth_date_ct, sex_ct,"
        " created_at) VALUES ('p', 'i', 'c', 'c', 'c', 'c', :t)",
        "INSERT INTO studies (id, patient_id, blob_key, sha256, size_bytes, modality,"
        " created_at) VALUES ('s', 'p', 'k', 'x', 1, 'CR', :t)",
        "INSERT INTO predictions (id, study_id, model_name, model_version, artifact_sha256,"
        " input_sha256, preprocessing, label, probability, latency_ms, created_at, warnings)"
        " VALUES ('r', 's', 'm', '1', 'a', 'b', '{}', 'x', 0.5, 1.0, :t, '[]')",
    ]
    with empty_engine.begin() as connection:
        for statement in statements:
            connection.execute(sa.text(statement), {"t": at.format(0)})
        for row_id, user, created in rows:
            connection.execute(
                sa.text(
                    "INSERT INTO feedback (id, prediction_id, user_id, verdict, created_at)"
                    " VALUES (:i, 'r', :u, 'agree', :t)"
                ),
                {"i": row_id, "u": user, "t": created},
            )
    db.migrate(empty_engine)
    with empty_engine.connect() as connection:
        found = connection.execute(
            sa.text("SELECT id, superseded_at FROM feedback ORDER BY id")
        ).all()
    superseded = {row_id: str(when)[:19] if when else None for row_id, when in found}
    assert superseded == {"f1": "2026-11-30 10:00:02", "f2": None, "f3": None}


def test_migration_0006_leaves_old_predictions_unchecked_and_downgrades(
    empty_engine: sa.Engine,
) -> None:
    db.migrate(empty_engine, "0005")
    statements = [
        "INSERT INTO patients (id, mrn_index, mrn_ct, name_ct, birth_date_ct, sex_ct,"
        " created_at) VALUES ('p', 'i', 'c', 'c', 'c', 'c', :t)",
        "INSERT INTO studies (id, patient_id, blob_key, sha256, size_bytes, modality,"
        " created_at) VALUES ('s', 'p', 'k', 'x', 1, 'CR', :t)",
        "INSERT INTO predictions (id, study_id, model_name, model_version, artifact_sha256,"
        " input_sha256, preprocessing, label, probability, latency_ms, created_at, warnings)"
        " VALUES ('r', 's', 'm', '1', 'a', 'b', '{}', 'x', 0.5, 1.0, :t, '[]')",
    ]
    with empty_engine.begin() as connection:
        for statement in statements:
            connection.execute(sa.text(statement), {"t": "2026-12-03 10:00:00"})
    db.migrate(empty_engine, "0006")
    with empty_engine.connect() as connection:
        row = connection.execute(
            sa.text("SELECT intended_use, intended_use_reasons FROM predictions")
        ).one()
    assert row[0] is None
    assert row[1] in ("[]", [])  # SQLite returns the JSON text, PostgreSQL the list
    with empty_engine.begin() as connection:
        command.downgrade(db._alembic_config(connection), "0005")
    columns = {c["name"] for c in sa.inspect(empty_engine).get_columns("predictions")}
    assert "intended_use" not in columns
    assert "decision" in columns
