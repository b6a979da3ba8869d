"""Clinicians' accept / reject of treatment suggestions: plain data access (the service
checks the role, audits and commits). The free-text reason is encrypted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from clinsight.store.repositories import StoreContext
from clinsight.store.tables import RecommendationFeedback, new_id

__all__ = ["RecommendationDecision", "add_decision", "list_decisions", "patient_decisions"]

_TABLE = "recommendation_feedback"


@dataclass(frozen=True)
class RecommendationDecision:
    """One stored decision, its reason decrypted."""

    id: str
    person_id: str
    drug: str
    decision: str
    reason: str | None
    model: str | None
    model_version: int | None
    user_id: str
    created_at: datetime
    patient_id: str | None = None


def add_decision(
    ctx: StoreContext,
    *,
    person_id: str,
    drug: str,
    decision: str,
    reason: str | None,
    model: str | None,
    model_version: int | None,
    patient_id: str | None = None,
) -> RecommendationDecision:
    """Insert a decision by the context's actor (flushed, not committed)."""
    row = RecommendationFeedback(
        id=new_id(), person_id=person_id, drug=drug, decision=decision, model=model,
        model_version=model_version, user_id=ctx.actor.user_id, patient_id=patient_id,
    )  # fmt: skip
    if reason:
        row.reason_ct = ctx.keyring.encrypt_field(
            reason, table=_TABLE, column="reason_ct", row_id=row.id
        )
    ctx.session.add(row)
    ctx.session.flush()
    return _record(ctx, row)


def list_decisions(ctx: StoreContext, person_id: str) -> list[RecommendationDecision]:
    """The decisions on `person_id`'s suggestions, oldest first."""
    rows = ctx.session.scalars(
        select(RecommendationFeedback)
        .where(RecommendationFeedback.person_id == person_id)
        .order_by(RecommendationFeedback.created_at, RecommendationFeedback.id)
    )
    return [_record(ctx, row) for row in rows]


def patient_decisions(
    ctx: StoreContext, patient_id: str, *, break_glass: bool, limit: int = 200
) -> list[RecommendationDecision]:
    """The decisions made on stored patient `patient_id`'s record, newest first (one
    audit entry)."""
    rows = ctx.session.scalars(
        select(RecommendationFeedback)
        .where(RecommendationFeedback.patient_id == patient_id)
        .order_by(RecommendationFeedback.created_at.desc(), RecommendationFeedback.id)
        .limit(max(1, min(limit, 500)))
    )
    found = [_record(ctx, row) for row in rows]
    ctx.audit(
        "recommendation.list", "patient", resource_id=patient_id, patient_id=patient_id,
        break_glass=break_glass, details={"count": len(found)},
    )  # fmt: skip
    return found


def _record(ctx: StoreContext, row: RecommendationFeedback) -> RecommendationDecision:
    reason = (
        ctx.keyring.decrypt_field(row.reason_ct, table=_TABLE, column="reason_ct", row_id=row.id)
        if row.reason_ct is not None
        else None
    )
    return RecommendationDecision(
        row.id, row.person_id, row.drug, row.decision, reason, row.model,
        row.model_version, row.user_id, row.created_at, row.patient_id,
    )  # fmt: skip
