"""Stored risk, survival and progression assessments of a patient: the model, the inputs'
sha256 and a summary of the result (no PHI), so the patient record can show them again.

The assessing service audits the assessment itself (`risk.assess`, `survival.assess`);
reading them back is audited here. None commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select

from clinsight.store.repositories import StoreContext
from clinsight.store.tables import Assessment, new_id, utcnow

__all__ = ["AssessmentKind", "AssessmentRecord", "insert_assessment", "read_assessments"]

AssessmentKind = Literal["risk", "survival", "progression"]
KINDS: tuple[AssessmentKind, ...] = ("risk", "survival", "progression")


@dataclass(frozen=True)
class AssessmentRecord:
    """A stored assessment; `summary` holds e.g. ``probability`` and ``level`` (risk and
    progression) or ``risks`` by horizon in years (survival)."""

    id: str
    patient_id: str
    kind: AssessmentKind
    model_name: str
    model_version: str
    input_sha256: str
    summary: dict[str, Any]
    user_id: str | None
    created_at: datetime


def _record(row: Assessment) -> AssessmentRecord:
    kind: AssessmentKind = next((k for k in KINDS if k == row.kind), "risk")
    return AssessmentRecord(
        row.id, row.patient_id, kind, row.model_name, row.model_version, row.input_sha256,
        dict(row.summary), row.user_id, row.created_at,
    )  # fmt: skip


def insert_assessment(
    ctx: StoreContext,
    patient_id: str,
    kind: AssessmentKind,
    *,
    model_name: str,
    model_version: str,
    input_sha256: str,
    summary: dict[str, Any],
) -> AssessmentRecord:
    """Record an assessment the actor made (the caller's audit entry names its id)."""
    row = Assessment(
        id=new_id(), patient_id=patient_id, kind=kind, model_name=model_name,
        model_version=model_version, input_sha256=input_sha256, summary=summary,
        user_id=ctx.actor.user_id, created_at=utcnow(),
    )  # fmt: skip
    ctx.session.add(row)
    ctx.session.flush()
    return _record(row)


def read_assessments(
    ctx: StoreContext, patient_id: str, *, break_glass: bool, limit: int = 200
) -> list[AssessmentRecord]:
    """A patient's assessments, newest first, at most `limit` (one audit entry)."""
    rows = ctx.session.execute(
        select(Assessment)
        .where(Assessment.patient_id == patient_id)
        .order_by(Assessment.created_at.desc())
        .limit(max(1, min(limit, 500)))
    ).scalars()
    records = [_record(row) for row in rows]
    ctx.audit(
        "assessment.list", "patient", resource_id=patient_id, patient_id=patient_id,
        break_glass=break_glass, details={"count": len(records)},
    )  # fmt: skip
    return records
