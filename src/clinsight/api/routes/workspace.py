"""The clinician's workspace: the worklist, a patient's record as a FHIR Bundle, and a
finding's signed PDF report and FHIR DiagnosticReport."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel

from clinsight.api.deps import Clinician, State, StoreCtx
from clinsight.api.schemas import PatientOut, PredictionOut
from clinsight.services.patient_record import patient_fhir_bundle
from clinsight.services.reports import finding_diagnostic_report, sign_finding_report
from clinsight.services.worklist import WorklistFilter, tri_state, worklist

__all__ = ["WorklistItemOut", "router"]

router = APIRouter(tags=["workspace"])
PDF: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/pdf": {}}, "description": "The signed report (PDF)."}
}
Choice = Literal["", "only", "none"]


class WorklistItemOut(BaseModel):
    """A finding on the worklist with its patient and whether anyone has reviewed it."""

    prediction: PredictionOut
    patient: PatientOut
    reviewed: bool


@router.get("/worklist", response_model=list[WorklistItemOut])
def read_worklist(
    user: Clinician,
    ctx: StoreCtx,
    response: Response,
    status: Annotated[Literal["unreviewed", "reviewed", "all"], Query()] = "unreviewed",
    model: Annotated[str, Query(max_length=128, description="Only this model's.")] = "",
    indeterminate: Annotated[Choice, Query(description="only / none / either.")] = "",
    refused: Annotated[Choice, Query(description="only / none / either.")] = "",
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000, description="How many to skip.")] = 0,
) -> list[WorklistItemOut]:
    """Findings on the caller's patients, newest first (by default those nobody has
    reviewed); `X-Total-Count` gives all matches."""
    del user
    where = WorklistFilter(
        status=status,
        model=model or None,
        indeterminate=tri_state(indeterminate),
        refused=tri_state(refused),
    )
    found, _ = worklist(ctx, where, limit=limit, offset=offset)
    response.headers["X-Total-Count"] = str(found.total)
    return [
        WorklistItemOut(
            prediction=PredictionOut.model_validate(item.prediction),
            patient=PatientOut.model_validate(item.patient),
            reviewed=item.reviewed,
        )
        for item in found.items
    ]


@router.get("/patients/{patient_id}/fhir")
def patient_bundle(patient_id: str, user: Clinician, ctx: StoreCtx) -> dict[str, Any]:
    """The patient's record as a FHIR R4B collection Bundle: Patient, image Observations,
    note DocumentReferences, RiskAssessments."""
    del user
    return patient_fhir_bundle(ctx, patient_id)


@router.post("/predictions/{prediction_id}/report.pdf", response_class=Response, responses=PDF)
def signed_report(
    prediction_id: str, user: Clinician, ctx: StoreCtx, state: State, request: Request
) -> Response:
    """The finding's report as PDF, signed by the caller with their current verdict (its
    sha256 recorded, audited, and given in `X-Report-SHA256`); 422 before they reviewed it."""
    del user
    models_url = str(request.base_url).rstrip("/") + "/models"
    signed = sign_finding_report(ctx, state.predictor, prediction_id, models_url=models_url)
    headers = {
        "Content-Disposition": f'attachment; filename="{signed.filename}"',
        "Cache-Control": "no-store",
        "X-Report-SHA256": signed.signature.sha256,
    }
    return Response(signed.pdf, media_type="application/pdf", headers=headers)


@router.get("/predictions/{prediction_id}/diagnostic-report")
def diagnostic_report(prediction_id: str, user: Clinician, ctx: StoreCtx) -> dict[str, Any]:
    """The finding as a FHIR R4B DiagnosticReport: the Observation contained, final once
    reviewed, the reviewers and the sha256 of each signed PDF."""
    del user
    return finding_diagnostic_report(ctx, prediction_id)
