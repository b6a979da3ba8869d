"""Clinicians' accept / reject of treatment suggestions: plain data access (the service
checks the role, audits and commits). The free-text reason is encrypted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from clinsight.store.repositories import StoreContext
from clinsight.store.tables import RecommendationFeedback, new_id

__all__ = ["RecommendationDecision", "add_decision", "list_decisions"]

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


def add_decision(
    ctx: StoreContext,
    *,
    person_id: str,
    drug: str,
    decision: str,
    reason: str | None,
    model: str | None,
    model_version: int | None,
) -> RecommendationDecision:
    """Insert a decision by the context's actor (flushed, not committed)."""
    row = RecommendationFeedback(
        id=new_id(), person_id=person_id, drug=drug, decision=decision, model=model,
        model_version=model_version, user_id=ctx.actor.user_id,
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


def _record(ctx: StoreContext, row: RecommendationFeedback) -> RecommendationDecision:
    reason = (
        ctx.keyring.decrypt_field(row.reason_ct, table=_TABLE, column="reason_ct", row_id=row.id)
        if row.reason_ct is not None
        else None
    )
    return RecommendationDecision(
        row.id, row.person_id, row.drug, row.decision, reason, row.model,
        row.model_version, row.user_id, row.created_at,
    )  # fmt: skip
