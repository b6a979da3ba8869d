"""What monitoring reads about one model version: its predictions' outputs and input
statistics, and the clinicians' current verdicts on them (reasons decrypted, audited).

Intended-use refusals are counted by `intended_use_refused`, the one place that knows how a
refusal is recorded on a prediction row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from clinsight.store.repositories import StoreContext
from clinsight.store.tables import Feedback, Prediction, Verdict

__all__ = [
    "MonitoredPrediction",
    "MonitoredVerdict",
    "intended_use_refused",
    "model_predictions",
    "model_verdicts",
]


@dataclass(frozen=True)
class MonitoredPrediction:
    """One prediction's output and input statistic (no PHI)."""

    created_at: datetime
    predicted_label: str
    positive_probability: float | None
    mean_intensity: float | None
    refused: bool


@dataclass(frozen=True)
class MonitoredVerdict:
    """A clinician's current verdict on a prediction of the version, with what it was about."""

    prediction_id: str
    prediction_created_at: datetime
    predicted_label: str
    positive_probability: float | None
    verdict: Verdict
    override_label: str | None
    reason: str | None


def intended_use_refused() -> ColumnElement[bool]:
    """Whether a prediction row records an intended-use refusal (no finding given)."""
    return Prediction.intended_use == "refused"


def _version_filter(name: str, version: int) -> list[ColumnElement[bool]]:
    return [Prediction.model_name == name, Prediction.model_version == str(version)]


def model_predictions(
    session: Session, name: str, version: int, *, since: datetime | None = None
) -> list[MonitoredPrediction]:
    """The predictions of a model version (since `since`), oldest first."""
    query = select(
        Prediction.created_at, Prediction.decision, Prediction.label,
        Prediction.calibrated_confidence, Prediction.input_mean_intensity,
        intended_use_refused().label("refused"),
    ).where(*_version_filter(name, version))  # fmt: skip
    if since is not None:
        query = query.where(Prediction.created_at >= since)
    rows = session.execute(query.order_by(Prediction.created_at)).all()
    return [
        MonitoredPrediction(at, decision or label, p, intensity, bool(refused))
        for at, decision, label, p, intensity, refused in rows
    ]


def model_verdicts(
    ctx: StoreContext, name: str, version: int, *, since: datetime | None = None
) -> list[MonitoredVerdict]:
    """Every clinician's current verdict on the version's predictions (since `since`),
    reasons decrypted; one audit entry for the read (no PHI in it)."""
    query = (
        select(
            Feedback,
            Prediction.created_at,
            Prediction.decision,
            Prediction.label,
            Prediction.calibrated_confidence,
        )
        .join(Prediction, Prediction.id == Feedback.prediction_id)
        .where(*_version_filter(name, version), Feedback.superseded_at.is_(None))
        .order_by(Prediction.created_at, Feedback.id)
    )
    if since is not None:
        query = query.where(Prediction.created_at >= since)
    found = []
    for row, at, decision, label, p in ctx.session.execute(query).all():
        reason = None
        if row.reason_ct is not None:
            reason = ctx.keyring.decrypt_field(
                row.reason_ct, table="feedback", column="reason_ct", row_id=row.id
            )
        verdict = Verdict(row.verdict)
        found.append(MonitoredVerdict(
            row.prediction_id, at, decision or label, p, verdict, row.override_label, reason
        ))  # fmt: skip
    ctx.audit(
        "feedback.monitoring_read", "model", resource_id=f"{name}:{version}",
        details={"verdicts": len(found)},
    )  # fmt: skip
    return found
