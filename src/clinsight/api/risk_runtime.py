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
from clinsight.interop.cds_orders import ORDER_HOOKS, OrderService
from clinsight.interop.cds_progression import ProgressionCdsService

__all__ = ["RiskRuntime", "Runtime", "risk_runtime"]

_RUNTIME_LOCK = threading.Lock()


@dataclass
class RiskRuntime:
    """Loaded models, the CDS services of the configured risk and survival models, the
    deterioration service of the configured progression model, and the JWT verifier."""

    predictors: ModelCache
    services: dict[str, CdsService]
    verifier: CdsJwtVerifier
    progression_services: dict[str, ProgressionCdsService] = field(default_factory=dict)
    orders: dict[str, OrderService] = field(default_factory=dict)
    """The medication-order services (``order-select``, ``order-sign``)."""

    @property
    def service(self) -> CdsService:
        """The CDS service of the configured risk model."""
        return next(iter(self.services.values()))

    @classmethod
    def from_settings(cls, settings: Settings) -> RiskRuntime:
        """Build the runtime; each feature spec is a built-in name or a file.

        Raises:
            DataError: a feature spec cannot be read.
        """
        risk = CdsService(
            id=f"{settings.risk_model}-risk",
            title=f"Risk ({settings.risk_model})",
            description=f"Calibrated risk from the {settings.risk_model} model, with the "
            "factors that raised or lowered it, computed from the patient's FHIR data.",
            model_name=settings.risk_model,
            spec=_spec(settings.risk_feature_spec),
        )
        survival = CdsService(
            id=f"{settings.survival_model}-survival",
            title=f"Survival ({settings.survival_model})",
            description=f"Predicted risk of the event by 1, 3 and 5 years from the "
            f"{settings.survival_model} survival model, with the factors that move it, "
            "computed from the patient's FHIR data.",
            model_name=settings.survival_model,
            spec=_spec(settings.survival_feature_spec),
            kind="survival",
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
        orders = [
            OrderService(
                id=f"medication-{hook}",
                hook=hook,
                title=f"Medication safety ({hook})",
                description="Checks draft medication orders (RxNorm) against the patient's "
                "active medications and allergies (a small demonstration interaction table"
                + (
                    ", with the hospital's own file"
                    if settings.interactions_csv
                    else " a hospital adds its own to"
                )
                + "), and proposes alternatives from the "
                f"{settings.recommendation_model} recommender.",
                model_name=settings.recommendation_model,
                interactions=settings.interactions_csv,
            )
            for hook in ORDER_HOOKS
        ]
        return cls(
            model_cache(settings.resolved_registry_dir),
            {risk.id: risk, survival.id: survival},
            CdsJwtVerifier(settings.cds_hooks_issuers),
            progression_services={deterioration.id: deterioration},
            orders={o.id: o for o in orders},
        )


def _spec(source: str) -> FhirFeatureSpec:
    if source in BUILTIN_SPECS:
        return FhirFeatureSpec.builtin(source)
    return FhirFeatureSpec.from_file(Path(source))


def risk_runtime(request: Request) -> RiskRuntime:
    """The app's risk runtime, built once."""
    with _RUNTIME_LOCK:
        runtime: RiskRuntime | None = getattr(request.app.state, "clinsight_risk", None)
        if runtime is None:
            runtime = RiskRuntime.from_settings(request.app.state.clinsight.settings)
            request.app.state.clinsight_risk = runtime
    return runtime


Runtime = Annotated[RiskRuntime, Depends(risk_runtime)]
