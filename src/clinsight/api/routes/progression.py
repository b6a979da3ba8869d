"""Disease progression over HTTP: a stored patient's deterioration risk from a posted ICU
stay (a FHIR Bundle of Observations, or the text of a PhysioNet 2012 stay file), for
clinicians on the care team or by break-glass, audited; with the result as a FHIR
`RiskAssessment` whose ``basis`` references the Observations used (the survival route's
convention: the resource rides in the answer's ``fhir``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from clinsight.api.deps import Clinician, State, StoreCtx
from clinsight.inference.cache import model_cache
from clinsight.interop.fhir_progression import progression_risk_assessment
from clinsight.services.progression import assess_stored_progression

__all__ = ["ProgressionIn", "router"]

router = APIRouter(prefix="/progression", tags=["progression"])


class ProgressionIn(BaseModel):
    """The stay, as a FHIR Bundle or as PhysioNet-format text (exactly one), and the model."""

    bundle: dict[str, Any] | None = Field(
        default=None,
        description="A FHIR R4 Bundle of Observation resources (LOINC codes or the spec's "
        "variable names), optionally with the Patient and the ICU Encounter.",
    )
    stay: str | None = Field(
        default=None,
        description="The text of a PhysioNet 2012 stay file (Time,Parameter,Value rows).",
    )
    model: str | None = Field(default=None, description="Progression model (default: configured).")
    version: int | None = Field(default=None, description="Version (default: production).")


@router.post("/patients/{patient_id}")
def assess_patient_progression(
    patient_id: str, body: ProgressionIn, user: Clinician, ctx: StoreCtx, state: State
) -> dict[str, Any]:
    """A stored patient's calibrated risk at 48 h of the ICU stay, its alert level, the
    variables and hours that drove it (and the heat map), plus the FHIR RiskAssessment."""
    del user
    settings = state.settings
    assessment = assess_stored_progression(
        ctx, model_cache(settings.resolved_registry_dir), patient_id, bundle=body.bundle,
        stay=body.stay, model=body.model or settings.progression_model, version=body.version,
    )  # fmt: skip
    fhir = progression_risk_assessment(assessment, f"Patient/{patient_id}")
    return {**assessment.to_dict(), "fhir": fhir}
