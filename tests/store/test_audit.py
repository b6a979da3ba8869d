"""The hash-chained audit log: hashing, tamper detection, concurrency."""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from clinsight.errors import StoreError
from clinsight.store import audit

AT = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _append_many(sessions: sessionmaker[Session], count: int) -> None:
    with sessions() as session:
        for i in range(count):
            audit.append(
                session,
                action="patient.read",
                resource_type="patient",
                actor_id=f"user-{i % 2}",
                patient_id=f"patient-{i}",
                details={"n": i},
                at=AT,
            )
        session.commit()


def _tamper(engine: sa.Engine, *statements: str) -> None:
    """What someone with raw database access could do: disable the guard, then edit."""
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.execute(sa.text("DROP TRIGGER IF EXISTS audit_log_no_update"))
            connection.execute(sa.text("DROP TRIGGER IF EXISTS audit_log_no_delete"))
        else:
            connection.execute(sa.text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
        for statement in statements:
            connection.execute(sa.text(statement))


def test_entry_hash_is_sha256_of_canonical_json() -> None:
    entry = audit.AuditEntry(
        seq=1,
        at=AT,
        actor_id="u",
        action="auth.login",
        resource_type="user",
        resource_id="u",
        patient_id=None,
        outcome="success",
        details={"b": 1, "a": "x"},
        break_glass=False,
        prev_hash=audit.GENESIS_HASH,
        hash="",
    )
    canonical = (
        '{"action":"auth.login","actor_id":"u","at":"2026-03-01T12:00:00.123456+00:00",'
        '"break_glass":false,"details":{"a":"x","b":1},"outcome":"success","patient_id":null,'
        f'"prev_hash":"{"0" * 64}","resource_id":"u","resource_type":"user","seq":1}}'
    )
    assert audit.entry_hash(entry) == hashlib.sha256(canonical.encode()).hexdigest()


def test_chain_links_and_verifies(sessions: sessionmaker[Session]) -> None:
    _append_many(sessions, 5)
    with sessions() as session:
        entries = audit.list_entries(session, limit=500)
        assert [e.seq for e in entries] == [5, 4, 3, 2, 1]
        assert entries[-1].prev_hash == audit.GENESIS_HASH
        assert all(a.prev_hash == b.hash for a, b in itertools.pairwise(entries))
        assert all(e.at == AT and e.details == {"n": e.seq - 1} for e in entries)
        assert audit.verify(session) == audit.AuditVerification(ok=True, entries=5)
        assert [e.seq for e in audit.list_entries(session, limit=2, before_seq=4)] == [3, 2]
        assert [e.seq for e in audit.list_entries(session, patient_id="patient-0")] == [1]


@pytest.mark.parametrize(
    ("statement", "bad_seq", "problem"),
    [
        ("UPDATE audit_log SET details = '{\"n\": 9}' WHERE seq = 3", 3, "entry 3 was altered"),
        ("UPDATE audit_log SET actor_id = 'user-9' WHERE seq = 2", 2, "entry 2 was altered"),
        ("DELETE FROM audit_log WHERE seq = 2", 2, "entry 2 is missing"),
        ("DELETE FROM audit_log WHERE seq = 5", 5, "head records entry 5, but the log ends at 4"),
        (
            "UPDATE audit_log SET seq = 99 WHERE seq = 3;"
            " UPDATE audit_log SET seq = 3 WHERE seq = 4;"
            " UPDATE audit_log SET seq = 4 WHERE seq = 99",
            3,
            "entry 3 was altered",
        ),
    ],
    ids=["edit-details", "edit-actor", "delete", "truncate-tail", "reorder"],
)
def test_tampering_is_detected_at_its_seq(
    engine: sa.Engine,
    sessions: sessionmaker[Session],
    statement: str,
    bad_seq: int,
    problem: str,
) -> None:
    _append_many(sessions, 5)
    _tamper(engine, *statement.split(";"))
    with sessions() as session:
        result = audit.verify(session)
    assert (result.ok, result.first_bad_seq, result.entries) == (False, bad_seq, bad_seq - 1)
    assert result.problem is not None
    assert problem in result.problem


def test_rehashed_edit_breaks_the_next_link(
    engine: sa.Engine, sessions: sessionmaker[Session]
) -> None:
    _append_many(sessions, 4)
    with sessions() as session:
        entry = next(e for e in audit.list_entries(session) if e.seq == 2)
    forged = audit.AuditEntry(**{**entry.__dict__, "actor_id": "intruder"})
    _tamper(
        engine,
        f"UPDATE audit_log SET actor_id = 'intruder', hash = '{audit.entry_hash(forged)}' "
        "WHERE seq = 2",
    )
    with sessions() as session:
        result = audit.verify(session)
    assert (result.first_bad_seq, result.problem) == (3, "entry 3 does not link to entry 2")


@pytest.mark.parametrize("key", ["mrn", "Name", "reason", "birth_date"])
def test_phi_looking_details_are_refused(key: str) -> None:
    with Session() as session, pytest.raises(StoreError, match=f"{key!r} may hold PHI"):
        audit.append(session, action="x", resource_type="y", details={key: "v"})


def test_nested_details_are_refused() -> None:
    with Session() as session, pytest.raises(StoreError, match="must be a string, number"):
        audit.append(session, action="x", resource_type="y", details={"k": [1]})  # type: ignore[dict-item]


def test_concurrent_appends_keep_one_valid_chain(sessions: sessionmaker[Session]) -> None:
    threads, per_thread = 4, 8
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(per_thread):
                with sessions() as session:
                    audit.append(session, action="prediction.create", resource_type="p")
                    session.commit()
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    with sessions() as session:
        assert audit.verify(session) == audit.AuditVerification(True, threads * per_thread)
        seqs = session.execute(sa.text("SELECT seq FROM audit_log ORDER BY seq")).scalars()
        assert list(seqs) == list(range(1, threads * per_thread + 1))


def test_details_round_trip_as_json(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        audit.append(session, action="x", resource_type="y", details={"p": 0.1, "ok": True})
        session.commit()
        raw = session.execute(sa.text("SELECT details FROM audit_log")).scalar()
    assert (json.loads(raw) if isinstance(raw, str) else raw) == {"p": 0.1, "ok": True}
