"""The clinician's workspace under the access policy: the worklist, stored assessments,
signed reports and a patient's care team as their clinicians see it.

Each function decides first (`security.access`: a refusal is audited and committed) and
then calls the store. None commits.
"""

from __future__ import annotations

from typing import Any

from clinsight.security.access import (
    accessible_patient_ids,
    require_patient_access,
    require_role,
)
from clinsight.store import assessments, recommendation_feedback, reports, worklist
from clinsight.store.accounts import care_team_members
from clinsight.store.actors import PatientAccess
from clinsight.store.assessments import AssessmentKind, AssessmentRecord
from clinsight.store.recommendation_feedback import RecommendationDecision
from clinsight.store.reports import SignedReportRecord
from clinsight.store.repositories import StoreContext
from clinsight.store.roles import Role
from clinsight.store.studies import prediction_patient_id

__all__ = [
    "care_team_names",
    "list_assessments",
    "list_recommendation_decisions",
    "list_signed_reports",
    "read_worklist",
    "record_assessment",
    "sign_report",
    "worklist_models",
]


def _glass(ctx: StoreContext, patient_id: str, action: str) -> bool:
    access = require_patient_access(ctx.session, ctx.actor, patient_id, action)
    return access is PatientAccess.BREAK_GLASS


def read_worklist(
    ctx: StoreContext, where: worklist.WorklistFilter, *, limit: int = 50, offset: int = 0
) -> worklist.WorklistPage:
    """One page of the findings on the actor's patients (care team and live break-glass)
    that match `where`, newest first, with the total.

    Raises:
        PermissionDeniedError: the actor is not a clinician (the denial is committed).
    """
    require_role(ctx.session, ctx.actor, "worklist.read", Role.CLINICIAN)
    allowed = accessible_patient_ids(ctx.session, ctx.actor)
    return worklist.read_worklist(ctx, allowed, where, limit=limit, offset=offset)


def worklist_models(ctx: StoreContext) -> list[str]:
    """The models that made findings on the actor's patients (clinicians; else empty)."""
    return worklist.worklist_models(ctx, accessible_patient_ids(ctx.session, ctx.actor))


def record_assessment(
    ctx: StoreContext, patient_id: str, kind: AssessmentKind, **fields: Any
) -> AssessmentRecord:
    """Keep a risk or survival assessment of a patient the actor may open.

    Raises:
        PermissionDeniedError: the actor may not open this patient (the denial is committed).
    """
    require_patient_access(ctx.session, ctx.actor, patient_id, f"{kind}.assess")
    return assessments.insert_assessment(ctx, patient_id, kind, **fields)


def list_assessments(ctx: StoreContext, patient_id: str) -> list[AssessmentRecord]:
    """A patient's stored assessments, newest first (one audit entry).

    Raises:
        PermissionDeniedError: the actor may not open this patient (the denial is committed).
    """
    glass = _glass(ctx, patient_id, "assessment.list")
    return assessments.read_assessments(ctx, patient_id, break_glass=glass)


def list_recommendation_decisions(
    ctx: StoreContext, patient_id: str
) -> list[RecommendationDecision]:
    """The treatment decisions made on a patient's record, newest first (one audit entry).

    Raises:
        PermissionDeniedError: the actor may not open this patient (the denial is committed).
    """
    glass = _glass(ctx, patient_id, "recommendation.list")
    return recommendation_feedback.patient_decisions(ctx, patient_id, break_glass=glass)


def sign_report(
    ctx: StoreContext, prediction_id: str, *, verdict: str, sha256: str
) -> SignedReportRecord:
    """Record the actor's signature (the PDF's sha256 and their verdict) on a finding's
    report; audited as ``report.sign``.

    Raises:
        RecordNotFoundError: no prediction has this id.
        PermissionDeniedError: the actor may not open its patient (the denial is committed).
    """
    patient_id = prediction_patient_id(ctx, prediction_id)
    glass = _glass(ctx, patient_id, "report.sign")
    return reports.insert_signed_report(
        ctx, prediction_id, patient_id, verdict=verdict, sha256=sha256, break_glass=glass
    )


def list_signed_reports(ctx: StoreContext, prediction_id: str) -> list[SignedReportRecord]:
    """The signatures of a finding's report, newest first.

    Raises:
        RecordNotFoundError: no prediction has this id.
        PermissionDeniedError: the actor may not open its patient (the denial is committed).
    """
    require_patient_access(
        ctx.session, ctx.actor, prediction_patient_id(ctx, prediction_id), "report.list"
    )
    return reports.read_signed_reports(ctx, prediction_id)


def care_team_names(ctx: StoreContext, patient_id: str) -> list[str]:
    """The usernames of a patient's care team, for the header of the patient's pages.

    Raises:
        PermissionDeniedError: the actor may not open this patient (the denial is committed).
    """
    require_patient_access(ctx.session, ctx.actor, patient_id, "care_team.read")
    return [member.username for member in care_team_members(ctx.session, patient_id)]
