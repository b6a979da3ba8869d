"""Risk assessment over HTTP: registered risk models, a stored patient's risk (clinicians,
audited), and a FHIR Bundle in → `RiskAssessment` out.

`risk_runtime` holds what the risk and CDS Hooks routes share: loaded models and the CDS
service (built on first use from Settings).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from pydantic import BaseModel, Field

from clinsight.api.deps import Clinician, DbSession, StoreCtx
from clinsight.config import Settings
from clinsight.data.fhir import parse_bundle
from clinsight.data.fhir_features import BUILTIN_SPECS, FhirFeatureSpec
from clinsight.inference.cache import ModelCache, model_cache
from clinsight.interop.cds_hooks import CdsJwtVerifier, CdsService
from clinsight.interop.fhir_out import risk_assessment, risk_assessment_json
from clinsight.services.risk import assess_record, assess_stored_patient
from clinsight.store import audit

__all__ = ["RiskAssessIn", "RiskRuntime", "Runtime", "risk_runtime", "router"]

router = APIRouter(tags=["risk"])
_RUNTIME_LOCK = threading.Lock()


@dataclass
class RiskRuntime:
    """Loaded risk models, the CDS service of the configured model, and the JWT verifier."""

    predictors: ModelCache
    services: dict[str, CdsService]
    verifier: CdsJwtVerifier

    @property
    def service(self) -> CdsService:
        """The CDS service of the configured risk model."""
        return next(iter(self.services.values()))

    @classmethod
    def from_settings(cls, settings: Settings) -> RiskRuntime:
        """Build the runtime; the feature spec is a built-in name or a file.

        Raises:
            DataError: the feature spec cannot be read.
        """
        source = settings.risk_feature_spec
        spec = (
            FhirFeatureSpec.builtin(source)
            if source in BUILTIN_SPECS
            else FhirFeatureSpec.from_file(Path(source))
        )
        service = CdsService(
            id=f"{settings.risk_model}-risk",
            title=f"Risk ({settings.risk_model})",
            description=f"Calibrated risk from the {settings.risk_model} model, with the "
            "factors that raised or lowered it, computed from the patient's FHIR data.",
            model_name=settings.risk_model,
            spec=spec,
        )
        return cls(
            model_cache(settings.resolved_registry_dir),
            {service.id: service},
            CdsJwtVerifier(settings.cds_hooks_issuers),
        )


def risk_runtime(request: Request) -> RiskRuntime:
    """The app's risk runtime, built once."""
    with _RUNTIME_LOCK:
        runtime: RiskRuntime | None = getattr(request.app.state, "clinsight_risk", None)
        if runtime is None:
            runtime = RiskRuntime.from_settings(request.app.state.clinsight.settings)
            request.app.state.clinsight_risk = runtime
    return runtime


Runtime = Annotated[RiskRuntime, Depends(risk_runtime)]


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
    ctx.session.commit()
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
    record = parse_bundle(json.dumps(bundle), source="request body")
    result = assess_record(runtime.predictors.risk(service.model_name), record, service.spec)
    audit.append(
        session, action="risk.assess_fhir", resource_type="bundle", actor_id=user.user_id,
        details={"model": result.model.name, "version": result.model.version,
                 "input_sha256": record.source_sha256},
    )  # fmt: skip
    session.commit()
    return risk_assessment_json(risk_assessment(result, record.reference))
