"""Survival over HTTP: a stored patient's predicted survival (clinicians, care team or
break-glass, audited), with the result as a FHIR `RiskAssessment` (one prediction per
horizon). The web's survival page calls the same service."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from clinsight.api.deps import Clinician, State, StoreCtx
from clinsight.inference.cache import model_cache
from clinsight.interop.fhir_survival import survival_risk_assessment
from clinsight.services.survival import DEFAULT_HORIZONS, assess_stored_survival

__all__ = ["SurvivalIn", "router"]

router = APIRouter(prefix="/survival", tags=["survival"])


class SurvivalIn(BaseModel):
    """Feature values of the patient (absent or null: missing), horizons and the model."""

    inputs: dict[str, float | str | None] = Field(description="Model input → value.")
    horizons: list[float] = Field(
        default=list(DEFAULT_HORIZONS), description="Horizons in years (within the follow-up)."
    )
    model: str | None = Field(default=None, description="Survival model (default: configured).")
    version: int | None = Field(default=None, description="Version (default: production).")


@router.post("/patients/{patient_id}")
def predict_patient_survival(
    patient_id: str, body: SurvivalIn, user: Clinician, ctx: StoreCtx, state: State
) -> dict[str, Any]:
    """A stored patient's survival curve with its band, the population's Kaplan-Meier curve,
    the risk by each horizon and the factors that move it, plus the FHIR RiskAssessment."""
    del user
    settings = state.settings
    result = assess_stored_survival(
        ctx, model_cache(settings.resolved_registry_dir), patient_id, body.inputs,
        model=body.model or settings.survival_model, version=body.version,
        horizons=body.horizons,
    )  # fmt: skip
    return {**result.to_dict(), "fhir": survival_risk_assessment(result, f"Patient/{patient_id}")}
