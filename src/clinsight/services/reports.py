"""Use case: a finding's signed, printable report and its FHIR `DiagnosticReport`.

The reviewing clinician (the actor) must have a current verdict on the finding: a report
of an unreviewed finding is refused. Signing records the PDF's sha256 with the reviewer,
their verdict and the time (audited as ``report.sign``); the PDF is rendered with no
transaction open.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from clinsight.errors import DataError
from clinsight.interop.fhir_report import diagnostic_report
from clinsight.interop.report_pdf import ReportContent, render_report_pdf
from clinsight.security.clinical import get_prediction, list_feedback
from clinsight.security.workspace import list_signed_reports, sign_report
from clinsight.services.patient_record import patient_header
from clinsight.services.predictions import (
    PredictorLookup,
    explained_prediction,
    prediction_feedback,
)
from clinsight.store.accounts import usernames
from clinsight.store.reports import SignedReportRecord
from clinsight.store.repositories import StoreContext
from clinsight.store.studies import prediction_patient_id
from clinsight.store.tables import utcnow

__all__ = ["SignedFindingReport", "finding_diagnostic_report", "sign_finding_report"]


@dataclass(frozen=True)
class SignedFindingReport:
    """The PDF as signed and its signature record."""

    pdf: bytes
    signature: SignedReportRecord

    @property
    def filename(self) -> str:
        """A download name without PHI."""
        return f"clinsight-report-{self.signature.prediction_id}.pdf"


def sign_finding_report(
    ctx: StoreContext, predictors: PredictorLookup, prediction_id: str, *, models_url: str
) -> SignedFindingReport:
    """Render the finding's report for the reviewing clinician (the actor) and sign it: its
    sha256 recorded with them, their verdict and the time. The model card link is
    `models_url` (the models page) at the model version's anchor. Committed.

    Raises:
        RecordNotFoundError: no such prediction.
        PermissionDeniedError: the actor may not open its patient.
        DataError: the actor has not reviewed the finding yet.
        ModelNotFoundError: the model version that made it is no longer registered.
    """
    review = prediction_feedback(ctx, prediction_id).current_of(ctx.actor.user_id)
    if review is None:
        raise DataError(
            "review the finding first (agree, disagree or override); then print its report"
        )
    explained = explained_prediction(ctx, predictors, prediction_id)
    header = patient_header(ctx, explained.view.study.patient_id)
    signed_at = utcnow()
    record = explained.view.prediction
    card_url = f"{models_url}#{record.model_name}-{record.model_version}"
    pdf = render_report_pdf(ReportContent(
        patient=header.patient, age=header.age, prediction=record,
        image_png=explained.plain or explained.overlay, heatmap_png=explained.overlay,
        card_url=card_url, reviewer=ctx.actor.username, review=review, signed_at=signed_at,
        cropped=explained.cropped,
    ))  # fmt: skip
    sha256 = hashlib.sha256(pdf).hexdigest()
    signature = sign_report(ctx, prediction_id, verdict=str(review.verdict), sha256=sha256)
    ctx.session.commit()
    return SignedFindingReport(pdf, signature)


def finding_diagnostic_report(ctx: StoreContext, prediction_id: str) -> dict[str, Any]:
    """The finding as a FHIR R4B `DiagnosticReport` (JSON) with its reviewers' current
    verdicts and the sha256 of each signed PDF; the reads are audited and committed.

    Raises:
        RecordNotFoundError: no such prediction.
        PermissionDeniedError: the actor may not open its patient.
        DataError: the resource does not validate.
    """
    record = get_prediction(ctx, prediction_id)
    patient_id = prediction_patient_id(ctx, prediction_id)
    current = [f for f in list_feedback(ctx, patient_id, [prediction_id]) if f.current]
    names = usernames(ctx.session, {f.user_id for f in current})
    signatures = list_signed_reports(ctx, prediction_id)
    ctx.session.commit()
    reviews = [(f, names.get(f.user_id, "a clinician")) for f in current]
    return diagnostic_report(record, patient_id, reviews, signatures)
