"""HL7 CDS Hooks over HTTP: discovery, the ``patient-view`` service, feedback, model card.

Served at the root (``/cds-services``), as EHRs expect, not under /api/v1: callers are
EHRs authenticated by their signed JWT (`interop.cds_hooks.CdsJwtVerifier`), not users.
Discovery and the model card are public (no patient data). Each call and each feedback
item is audited with the issuer and no PHI.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from clinsight.api.deps import DbSession
from clinsight.api.problems import problem_response
from clinsight.api.routes.risk import RiskRuntime, Runtime
from clinsight.errors import AuthenticationError, DataError, RecordNotFoundError
from clinsight.interop.cds_hooks import (
    CdsCaller,
    CdsService,
    build_cards,
    discovery,
    missing_prefetch,
    record_from_prefetch,
)
from clinsight.registry.risk import get_risk_model
from clinsight.services.risk import assess_record
from clinsight.store import audit

__all__ = ["router"]

router = APIRouter(prefix="/cds-services", tags=["cds-hooks"])


def _base_url(request: Request) -> str:
    settings = request.app.state.clinsight.settings
    return (settings.public_url or str(request.base_url)).rstrip("/")


def _service(runtime: RiskRuntime, service: str) -> CdsService:
    if service not in runtime.services:
        raise RecordNotFoundError(
            f"no CDS service {service!r}; GET /cds-services lists {list(runtime.services)}"
        )
    return runtime.services[service]


def _caller(request: Request, service: str, runtime: Runtime) -> CdsCaller:
    """The EHR behind the request, from its JWT (checked before the body is read)."""
    _service(runtime, service)
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationError("CDS Hooks calls need 'Authorization: Bearer <JWT>'.")
    return runtime.verifier.verify(token.strip(), f"{_base_url(request)}/cds-services/{service}")


Ehr = Annotated[CdsCaller, Depends(_caller)]


@router.get("")
def services(runtime: Runtime) -> dict[str, Any]:
    """Discovery: the services, their hook and prefetch templates."""
    return discovery(runtime.services)


@router.post("/{service}", response_model=None)
def call_service(
    service: str,
    request: Request,
    caller: Ehr,
    runtime: Runtime,
    session: DbSession,
    body: Annotated[dict[str, Any], Body(description="A CDS Hooks request.")],
) -> dict[str, Any] | JSONResponse:
    """``patient-view``: cards with the patient's calibrated risk and its main factors.

    412 when a prefetch the service declares is missing (the service cannot query the EHR).
    """
    cds = _service(runtime, service)
    if body.get("hook") != "patient-view":
        raise DataError(f"{service} answers the patient-view hook, not {body.get('hook')!r}.")
    absent = missing_prefetch(cds, body)
    if absent:
        return problem_response(
            412, "Prefetch required",
            f"send the prefetch {', '.join(absent)} as declared by GET /cds-services",
        )  # fmt: skip
    record = record_from_prefetch(cds, body)
    result = assess_record(runtime.predictors.risk(cds.model_name), record, cds.spec)
    card_url = f"{_base_url(request)}/cds-services/{service}/model-card/{result.model.version}"
    audit.append(
        session, action="cds.patient_view", resource_type="cds_service", resource_id=service,
        details={"issuer": caller.issuer, "jti": caller.jti, "model": result.model.name,
                 "version": result.model.version, "level": result.level,
                 "hook_instance": str(body.get("hookInstance", ""))[:64]},
    )  # fmt: skip
    session.commit()
    return {"cards": build_cards(cds, result, card_url)}


@router.post("/{service}/feedback")
def feedback(
    service: str,
    caller: Ehr,
    session: DbSession,
    body: Annotated[dict[str, Any], Body(description="CDS Hooks feedback on cards.")],
) -> Response:
    """Record what the clinician did with each card (accepted or overridden, with reason)."""
    items = body.get("feedback")
    if not isinstance(items, list) or not items:
        raise DataError("feedback needs a non-empty 'feedback' list of {card, outcome}.")
    for item in items:
        outcome = item.get("outcome") if isinstance(item, dict) else None
        if outcome not in ("accepted", "overridden") or not item.get("card"):
            raise DataError("each feedback item needs 'card' and outcome accepted or overridden.")
        override = item.get("overrideReason") or {}
        reason = (override.get("reason") or {}) if isinstance(override, dict) else None
        if not isinstance(reason, dict):
            raise DataError("'overrideReason' must be an object whose 'reason' is a Coding.")
        audit.append(
            session, action="cds.feedback", resource_type="cds_card",
            resource_id=str(item["card"])[:64],
            details={"issuer": caller.issuer, "service": service, "outcome": outcome,
                     "override_code": str(reason.get("code", ""))[:64]},
        )  # fmt: skip
    session.commit()
    return Response(status_code=200)


@router.get("/{service}/model-card/{version}", response_class=PlainTextResponse)
def model_card(service: str, version: int, runtime: Runtime) -> str:
    """The Markdown model card of the model version behind the service's cards."""
    cds = _service(runtime, service)
    registry = runtime.predictors.registry_dir
    entry = get_risk_model(registry, cds.model_name, version, verify=False)
    return entry.card_path.read_text(encoding="utf-8")
