"""The risk models of the running service, loaded once: what the risk and CDS Hooks routes
and the web's risk pages share (built on first use from Settings)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from clinsight.config import Settings
from clinsight.data.fhir_features import BUILTIN_SPECS, FhirFeatureSpec
from clinsight.data.physionet2012 import load_spec
from clinsight.inference.cache import ModelCache, model_cache
from clinsight.interop.cds_hooks import CdsJwtVerifier, CdsService
from clinsight.interop.cds_progression import ProgressionCdsService

__all__ = ["RiskRuntime", "Runtime", "risk_runtime"]

_RUNTIME_LOCK = threading.Lock()


@dataclass
class RiskRuntime:
    """Loaded risk models, the CDS service of the configured model, the deterioration
    service of the configured progression model, and the JWT verifier."""

    predictors: ModelCache
    services: dict[str, CdsService]
    verifier: CdsJwtVerifier
    progression_services: dict[str, ProgressionCdsService] = field(default_factory=dict)

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
        name = settings.progression_model
        deterioration = ProgressionCdsService(
            id=f"{name}-deterioration",
            title=f"ICU deterioration ({name})",
            description=f"Calibrated risk of in-hospital death at 48 h of the ICU stay from the "
            f"{name} progression model, with the vital signs and laboratory values and the "
            "hours that drove it, computed from the patient's FHIR Observations.",
            model_name=name,
            spec=load_spec(),
        )
        return cls(
            model_cache(settings.resolved_registry_dir),
            {service.id: service},
            CdsJwtVerifier(settings.cds_hooks_issuers),
            {deterioration.id: deterioration},
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
