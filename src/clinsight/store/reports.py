"""Signed reports of a finding: the sha256 of the PDF as signed, the reviewing clinician,
their verdict and the time. The PDF is not kept; the hash proves which one was signed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from clinsight.store.repositories import StoreContext
from clinsight.store.tables import SignedReport, User, new_id, utcnow

__all__ = ["SignedReportRecord", "insert_signed_report", "read_signed_reports"]


@dataclass(frozen=True)
class SignedReportRecord:
    """One signature of a finding's report."""

    id: str
    prediction_id: str
    reviewer_id: str
    reviewer: str
    verdict: str
    sha256: str
    signed_at: datetime


def insert_signed_report(
    ctx: StoreContext,
    prediction_id: str,
    patient_id: str,
    *,
    verdict: str,
    sha256: str,
    signed_at: datetime | None = None,
    break_glass: bool,
) -> SignedReportRecord:
    """Record that the actor signed the report with this sha256 (audited as
    ``report.sign``, the hash in the entry)."""
    row = SignedReport(
        id=new_id(), prediction_id=prediction_id, reviewer_id=ctx.actor.user_id,
        verdict=verdict, sha256=sha256, signed_at=signed_at or utcnow(),
    )  # fmt: skip
    ctx.session.add(row)
    ctx.session.flush()
    ctx.audit(
        "report.sign", "prediction", resource_id=prediction_id, patient_id=patient_id,
        break_glass=break_glass, details={"sha256": sha256, "verdict": verdict,
                                          "report_id": row.id},
    )  # fmt: skip
    return SignedReportRecord(
        row.id, prediction_id, row.reviewer_id, ctx.actor.username, verdict, sha256, row.signed_at
    )


def read_signed_reports(ctx: StoreContext, prediction_id: str) -> list[SignedReportRecord]:
    """The signatures of a prediction's report, newest first (ids and hashes, no PHI; the
    caller has audited the read of the prediction)."""
    rows = ctx.session.execute(
        select(SignedReport, User.username)
        .join(User, User.id == SignedReport.reviewer_id)
        .where(SignedReport.prediction_id == prediction_id)
        .order_by(SignedReport.signed_at.desc())
    )
    return [
        SignedReportRecord(r.id, r.prediction_id, r.reviewer_id, name, r.verdict, r.sha256,
                           r.signed_at)
        for r, name in rows
    ]  # fmt: skip
