"""The worklist query: image findings on a set of patients, newest first, filtered by model,
review status, indeterminate and refused, one page at a time with the total count.

A finding is reviewed when at least one clinician has a current verdict on it. Only the
patients of the page are decrypted; each gets a ``patient.list`` audit entry and the read
itself one ``worklist.read`` entry with the filter (no PHI). None commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import ColumnElement, and_, exists, func, or_, select

from clinsight.evaluation.ood import IntendedUse
from clinsight.evaluation.thresholds import INDETERMINATE
from clinsight.store.repositories import PatientRecord, StoreContext, decrypt_patients
from clinsight.store.studies import PredictionRecord, prediction_record
from clinsight.store.tables import Feedback, Prediction, Study

__all__ = [
    "ReviewStatus",
    "WorklistFilter",
    "WorklistItem",
    "WorklistPage",
    "read_worklist",
    "worklist_models",
]

ReviewStatus = Literal["unreviewed", "reviewed", "all"]
MAX_PAGE = 100


@dataclass(frozen=True)
class WorklistFilter:
    """What the worklist shows: `indeterminate` and `refused` are True (only those), False
    (none of those) or None (either)."""

    status: ReviewStatus = "unreviewed"
    model: str | None = None
    indeterminate: bool | None = None
    refused: bool | None = None


@dataclass(frozen=True)
class WorklistItem:
    """A finding with its patient and whether anyone has reviewed it."""

    prediction: PredictionRecord
    patient: PatientRecord
    reviewed: bool


@dataclass(frozen=True)
class WorklistPage:
    """One page of the worklist and how many findings match in all."""

    items: list[WorklistItem]
    total: int
    offset: int


def _reviewed() -> ColumnElement[bool]:
    return exists().where(Feedback.prediction_id == Prediction.id, Feedback.superseded_at.is_(None))


def _conditions(allowed: set[str], where: WorklistFilter) -> list[ColumnElement[bool]]:
    found: list[ColumnElement[bool]] = [Study.patient_id.in_(allowed)]
    if where.status == "unreviewed":
        found.append(~_reviewed())
    elif where.status == "reviewed":
        found.append(_reviewed())
    if where.model:
        found.append(Prediction.model_name == where.model)
    is_refused = Prediction.intended_use == str(IntendedUse.REFUSED)
    if where.refused is True:
        found.append(is_refused)
    elif where.refused is False:
        found.append(or_(Prediction.intended_use.is_(None), ~is_refused))
    is_indeterminate = and_(Prediction.decision == INDETERMINATE, ~is_refused)
    if where.indeterminate is True:
        found.append(is_indeterminate)
    elif where.indeterminate is False:
        found.append(or_(Prediction.decision.is_(None), Prediction.decision != INDETERMINATE))
    return found


def read_worklist(
    ctx: StoreContext, allowed: set[str], where: WorklistFilter, *, limit: int = 50,
    offset: int = 0,
) -> WorklistPage:  # fmt: skip
    """One page of the findings on the `allowed` patients that match `where`, newest first."""
    conditions = _conditions(allowed, where)
    joined = select(Prediction, Study.patient_id, _reviewed().label("reviewed")).join(
        Study, Study.id == Prediction.study_id
    )
    total = ctx.session.execute(
        select(func.count()).select_from(Prediction).join(Study, Study.id == Prediction.study_id)
        .where(*conditions)
    ).scalar_one()  # fmt: skip
    offset = max(0, offset)
    rows = ctx.session.execute(
        joined.where(*conditions)
        .order_by(Prediction.created_at.desc(), Prediction.id)
        .limit(max(1, min(limit, MAX_PAGE)))
        .offset(offset)
    ).all()
    patients = decrypt_patients(ctx, {row.patient_id for row in rows})
    items = [
        WorklistItem(prediction_record(row[0]), patients[row.patient_id], bool(row.reviewed))
        for row in rows
    ]
    for patient_id in dict.fromkeys(item.patient.id for item in items):
        ctx.audit("patient.list", "patient", resource_id=patient_id, patient_id=patient_id)
    asked = {k: str(v) for k, v in vars(where).items() if v is not None}
    ctx.audit("worklist.read", "prediction", details={"count": len(items), **asked})
    return WorklistPage(items, int(total), offset)


def worklist_models(ctx: StoreContext, allowed: set[str]) -> list[str]:
    """The names of the models that made findings on the `allowed` patients (for a filter)."""
    rows = ctx.session.execute(
        select(Prediction.model_name).distinct().join(Study, Study.id == Prediction.study_id)
        .where(Study.patient_id.in_(allowed)).order_by(Prediction.model_name)
    ).scalars()  # fmt: skip
    return list(rows)
