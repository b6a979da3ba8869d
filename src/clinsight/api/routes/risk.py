"""Risk assessment over HTTP: registered risk models, a stored patient's risk (clinicians,
audited), and a FHIR Bundle in → `RiskAssessment` out.

The loaded models and the CDS service come from `api.risk_runtime`, which the CDS Hooks
routes and the web pages share.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, Field

from clinsight.api.deps import Clinician, DbSession, StoreCtx
from clinsight.api.risk_runtime import Runtime
from clinsight.interop.fhir_out import risk_assessment, risk_assessment_json
from clinsight.services.risk import assess_fhir_bundle, assess_stored_patient

__all__ = ["RiskAssessIn", "router"]

router = APIRouter(tags=["risk"])


class RiskAssessIn(BaseModel):
    """Feature values of the patient (absent or null: missing) and the model to use."""

    inputs: dict[str, float | str | None] = Field(description="Model input → value.")
    model: str | None = Field(default=None, description="Risk model (default: configured).")
    version: int | None = Field(default=None, description="Version (default: production).")


@router.post("/patients/{patient_id}/risk")
def assess_patient(
    patient_id: str, body: RiskAssessIn, user: Clinician, ctx: StoreCtx, runtime: Runtime
) -> dict[str, Any]:
    """Assess a stored patient (care team or break-glass; audited) with its explanation and
    the result as a FHIR RiskAssessment."""
    del user
    name = body.model or runtime.service.model_name
    result = assess_stored_patient(
        ctx, runtime.predictors, patient_id, body.inputs, model=name, version=body.version
    )
    fhir = risk_assessment_json(risk_assessment(result, f"Patient/{patient_id}"))
    return {**result.to_dict(), "fhir": fhir}


@router.post("/risk/fhir")
def assess_bundle(
    user: Clinician,
    session: DbSession,
    runtime: Runtime,
    bundle: Annotated[dict[str, Any], Body(description="A FHIR R4 Bundle with one Patient.")],
) -> dict[str, Any]:
    """A FHIR Bundle in, its `RiskAssessment` out (nothing stored; the call is audited)."""
    service = runtime.service
    result, record = assess_fhir_bundle(
        session, user, runtime.predictors, service.model_name, service.spec, bundle
    )
    return risk_assessment_json(risk_assessment(result, record.reference))
