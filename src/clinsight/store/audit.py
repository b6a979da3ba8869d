"""Append-only, hash-chained audit log: who did what to which record, and whether it was allowed.

Each entry's hash is the sha256 of the canonical JSON of its fields and the previous
entry's hash, so editing, deleting or reordering any entry breaks the chain from
there on. Appends lock the single `audit_head` row (SELECT ... FOR UPDATE on
PostgreSQL; SQLite transactions already start with BEGIN IMMEDIATE), so concurrent
writers extend the chain one at a time. Entries never hold PHI: only ids and codes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from clinsight.errors import StoreError
from clinsight.store.tables import AuditHead, AuditRow, utcnow

__all__ = [
    "GENESIS_HASH",
    "AuditEntry",
    "AuditEvent",
    "AuditFilter",
    "AuditVerification",
    "Outcome",
    "append",
    "append_many",
    "entry_hash",
    "list_entries",
    "record_denial",
    "verify",
]

GENESIS_HASH = "0" * 64
PHI_KEYS = frozenset(
    {"mrn", "name", "birth_date", "dob", "sex", "reason", "query", "filename", "path", "password"}
)
Scalar = str | int | float | bool | None
# Core statements on the tables, built once: appends sit on every request's path.
_LOG: Table = AuditRow.__table__  # type: ignore[assignment]
_HEAD: Table = AuditHead.__table__  # type: ignore[assignment]
_READ_HEAD = select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == 1).with_for_update()
_INSERT_ENTRY = insert(_LOG)
_MOVE_HEAD = (
    update(_HEAD)
    .where(_HEAD.c.id == 1)
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)


class Outcome(StrEnum):
    """How an audited action ended."""

    SUCCESS = "success"
    DENIED = "denied"
    FAILURE = "failure"


@dataclass(frozen=True)
class AuditEntry:
    """One audit entry as stored."""

    seq: int
    at: datetime
    actor_id: str | None
    action: str
    resource_type: str
    resource_id: str | None
    patient_id: str | None
    outcome: str
    details: dict[str, Scalar]
    break_glass: bool
    prev_hash: str
    hash: str


_FIELD_NAMES = tuple(AuditEntry.__dataclass_fields__)


@dataclass(frozen=True)
class AuditVerification:
    """The result of checking the whole chain; `first_bad_seq` names where it breaks."""

    ok: bool
    entries: int
    first_bad_seq: int | None = None
    problem: str | None = None


def entry_hash(entry: AuditEntry) -> str:
    """sha256 of the canonical JSON of every field but `hash` (`prev_hash` included)."""
    fields = _fields(entry)
    del fields["hash"]
    fields["at"] = entry.at.isoformat(timespec="microseconds")
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _fields(entry: AuditEntry) -> dict[str, Any]:
    """The entry's fields as a dict (a shallow copy: `dataclasses.asdict` deep-copies, and
    an append sits on every request's path)."""
    fields = {name: getattr(entry, name) for name in _FIELD_NAMES}
    fields["details"] = dict(entry.details)
    return fields


def _check_details(details: Mapping[str, Scalar]) -> dict[str, Scalar]:
    for key, value in details.items():
        if key.lower() in PHI_KEYS:
            raise StoreError(f"audit detail {key!r} may hold PHI; record ids and codes only")
        if not isinstance(value, str | int | float | bool) and value is not None:
            raise StoreError(f"audit detail {key!r} must be a string, number, bool or None")
    return dict(details)


@dataclass(frozen=True)
class AuditEvent:
    """An entry to append: what happened, before it has its place in the chain."""

    action: str
    resource_type: str
    outcome: Outcome = Outcome.SUCCESS
    actor_id: str | None = None
    resource_id: str | None = None
    patient_id: str | None = None
    details: Mapping[str, Scalar] | None = None
    break_glass: bool = False
    at: datetime | None = None


def append_many(session: Session, events: Sequence[AuditEvent]) -> list[AuditEntry]:
    """Append entries in order inside the caller's transaction (the caller commits): one
    read and one move of the chain's head and one multi-row insert, however many.

    Raises:
        StoreError: a detail key looks like PHI or a value is not a scalar.
    """
    if not events:
        return []
    checked = [_check_details(event.details or {}) for event in events]
    head = session.execute(_READ_HEAD).one()
    seq, prev_hash, now = head.seq, head.hash, utcnow()
    entries = []
    for event, details in zip(events, checked, strict=True):
        seq += 1
        entry = AuditEntry(
            seq=seq,
            at=event.at or now,
            actor_id=event.actor_id,
            action=event.action,
            resource_type=event.resource_type,
            resource_id=event.resource_id,
            patient_id=event.patient_id,
            outcome=str(event.outcome),
            details=details,
            break_glass=event.break_glass,
            prev_hash=prev_hash,
            hash="",
        )
        entry = replace(entry, hash=entry_hash(entry))
        entries.append(entry)
        prev_hash = entry.hash
    session.execute(_INSERT_ENTRY, [_fields(entry) for entry in entries])
    session.execute(_MOVE_HEAD, {"new_seq": seq, "new_hash": prev_hash})
    return entries


def append(
    session: Session,
    *,
    action: str,
    resource_type: str,
    outcome: Outcome = Outcome.SUCCESS,
    actor_id: str | None = None,
    resource_id: str | None = None,
    patient_id: str | None = None,
    details: Mapping[str, Scalar] | None = None,
    break_glass: bool = False,
    at: datetime | None = None,
) -> AuditEntry:
    """Append one entry to the chain inside the caller's transaction (the caller commits).

    Raises:
        StoreError: a detail key looks like PHI or a value is not a scalar.
    """
    event = AuditEvent(
        action, resource_type, outcome, actor_id, resource_id, patient_id, details, break_glass, at
    )
    return append_many(session, [event])[0]


def record_denial(session: Session, events: Sequence[AuditEvent]) -> None:
    """Append refused-access entries and commit them at once.

    The one commit the store makes on a caller's session, and on purpose: the refusal is
    raised right after, and the caller's rollback of its unit of work must not erase the
    record that someone tried to open what they may not.
    """
    append_many(session, events)
    session.commit()  # a recorded denial outlives the refused unit of work (see above)


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(**{name: getattr(row, name) for name in AuditEntry.__dataclass_fields__})


def _columns() -> list[Any]:
    return [getattr(AuditRow, name) for name in AuditEntry.__dataclass_fields__]


def verify(session: Session) -> AuditVerification:
    """Recompute the whole chain and report the first entry that was edited, moved or removed."""
    expected_seq, prev_hash = 1, GENESIS_HASH
    rows = session.execute(
        select(*_columns()).order_by(AuditRow.seq).execution_options(yield_per=1000)
    )
    for row in rows:
        entry = _entry(row)
        if entry.seq != expected_seq:
            problem = f"entry {expected_seq} is missing (next stored entry is {entry.seq})"
            return AuditVerification(False, expected_seq - 1, expected_seq, problem)
        if entry_hash(entry) != entry.hash:
            problem = f"entry {entry.seq} was altered: its content does not match its hash"
            return AuditVerification(False, expected_seq - 1, entry.seq, problem)
        if entry.prev_hash != prev_hash:
            problem = f"entry {entry.seq} does not link to entry {entry.seq - 1}"
            return AuditVerification(False, expected_seq - 1, entry.seq, problem)
        expected_seq, prev_hash = expected_seq + 1, entry.hash
    head = session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one()
    if head.seq != expected_seq - 1 or head.hash != prev_hash:
        problem = f"the chain head records entry {head.seq}, but the log ends at {expected_seq - 1}"
        return AuditVerification(False, expected_seq - 1, expected_seq, problem)
    return AuditVerification(True, expected_seq - 1)


@dataclass(frozen=True)
class AuditFilter:
    """Which entries an auditor asks for: every field that is set must match. `action`
    matches a whole action or its group ("patient" matches "patient.read"); `since` and
    `until` bound the time (inclusive, exclusive)."""

    actor_id: str | None = None
    patient_id: str | None = None
    action: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def list_entries(
    session: Session,
    *,
    limit: int = 100,
    before_seq: int | None = None,
    patient_id: str | None = None,
    where: AuditFilter | None = None,
    cap: int = 100,
) -> list[AuditEntry]:
    """Newest entries first, at most `limit` (capped at `cap`), optionally filtered."""
    where = where or AuditFilter(patient_id=patient_id)
    if patient_id is not None and where.patient_id is None:
        where = replace(where, patient_id=patient_id)
    query = select(*_columns()).order_by(AuditRow.seq.desc()).limit(max(1, min(limit, cap)))
    if before_seq is not None:
        query = query.where(AuditRow.seq < before_seq)
    if where.patient_id is not None:
        query = query.where(AuditRow.patient_id == where.patient_id)
    if where.actor_id is not None:
        query = query.where(AuditRow.actor_id == where.actor_id)
    if where.action:
        group = where.action.rstrip(".")
        query = query.where((AuditRow.action == group) | AuditRow.action.startswith(f"{group}."))
    if where.outcome:
        query = query.where(AuditRow.outcome == where.outcome)
    if where.since is not None:
        query = query.where(AuditRow.at >= where.since)
    if where.until is not None:
        query = query.where(AuditRow.at < where.until)
    return [_entry(row) for row in session.execute(query)]
