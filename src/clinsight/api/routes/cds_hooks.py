"""HL7 CDS Hooks over HTTP: discovery, the ``patient-view`` services (risk and survival),
the ``order-select`` and ``order-sign`` medication-order services, feedback, model card.

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
from clinsight.api.risk_runtime import RiskRuntime, Runtime
from clinsight.errors import (
    AuthenticationError,
    DataError,
    ImplausibleInputError,
    OutOfPopulationError,
    RecordNotFoundError,
)
from clinsight.interop.cds_hooks import (
    CdsCaller,
    CdsService,
    build_cards,
    discovery,
    implausible_card,
    missing_prefetch,
)
from clinsight.interop.cds_orders import alternatives_card, order_cards
from clinsight.interop.cds_progression import progression_card
from clinsight.interop.cds_survival import out_of_population_card, survival_card
from clinsight.registry.progression import get_progression_model
from clinsight.registry.risk import get_risk_model
from clinsight.registry.survival import get_survival_model
from clinsight.services.cds import (
    answer_order_hook,
    answer_patient_view,
    answer_progression_view,
    answer_survival_view,
    record_cds_feedback,
)

__all__ = ["router"]

router = APIRouter(prefix="/cds-services", tags=["cds-hooks"])


def _base_url(request: Request) -> str:
    settings = request.app.state.clinsight.settings
    return (settings.public_url or str(request.base_url)).rstrip("/")


def _service(runtime: RiskRuntime, service: str) -> CdsService:
    if service not in runtime.services:
        known = [*runtime.services, *runtime.progression_services, *runtime.orders]
        raise RecordNotFoundError(f"no CDS service {service!r}; GET /cds-services lists {known}")
    return runtime.services[service]


def _known(runtime: RiskRuntime, service: str) -> None:
    if service not in runtime.progression_services:
        _service(runtime, service)


def _caller(request: Request, service: str, runtime: Runtime) -> CdsCaller:
    """The EHR behind the request, from its JWT (checked before the body is read)."""
    if service not in runtime.orders:
        _known(runtime, service)
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationError("CDS Hooks calls need 'Authorization: Bearer <JWT>'.")
    return runtime.verifier.verify(token.strip(), f"{_base_url(request)}/cds-services/{service}")


Ehr = Annotated[CdsCaller, Depends(_caller)]


@router.get("")
def services(runtime: Runtime) -> dict[str, Any]:
    """Discovery: the services, their hook and prefetch templates."""
    found = discovery(runtime.services)
    found["services"] += [s.to_discovery() for s in runtime.progression_services.values()]
    found["services"] += [o.to_discovery() for o in runtime.orders.values()]
    return found


@router.post("/{service}", response_model=None)
def call_service(
    service: str,
    request: Request,
    caller: Ehr,
    runtime: Runtime,
    session: DbSession,
    body: Annotated[dict[str, Any], Body(description="A CDS Hooks request.")],
) -> dict[str, Any] | JSONResponse:
    """``patient-view``: a card with the patient's calibrated risk and its main factors, or
    (a survival service) the risk of the event by 1, 3 and 5 years.

    ``order-select`` / ``order-sign`` (the medication-order services): an interaction or
    allergy card per flagged draft MedicationRequest, with a suggestion that deletes it,
    and an alternatives card from the recommender.

    412 when a prefetch the service declares is missing (the service cannot query the EHR).
    """
    if service in runtime.orders:
        return _order_hook(service, caller, runtime, session, body)
    if body.get("hook") != "patient-view":
        raise DataError(f"{service} answers the patient-view hook, not {body.get('hook')!r}.")
    if service in runtime.progression_services:
        return _deterioration(service, request, caller, runtime, session, body)
    cds = _service(runtime, service)
    absent = missing_prefetch(cds, body)
    if absent:
        return problem_response(
            412, "Prefetch required",
            f"send the prefetch {', '.join(absent)} as declared by GET /cds-services",
        )  # fmt: skip
    try:
        if cds.kind == "survival":
            survival = answer_survival_view(session, runtime.predictors, cds, caller, body)
            card_url = _card_url(request, service, survival.model.version)
            return {"cards": [survival_card(survival, cds.title, card_url)]}
        result = answer_patient_view(session, runtime.predictors, cds, caller, body)
    except ImplausibleInputError as exc:
        return {"cards": [implausible_card(cds, exc)]}
    except OutOfPopulationError as exc:
        return {"cards": [out_of_population_card(cds, exc)]}
    return {"cards": build_cards(cds, result, _card_url(request, service, result.model.version))}


def _order_hook(
    service: str, caller: CdsCaller, runtime: RiskRuntime, session: DbSession,
    body: dict[str, Any],
) -> dict[str, Any] | JSONResponse:  # fmt: skip
    orders = runtime.orders[service]
    given = body.get("prefetch") or {}
    absent = [key for key in orders.prefetch if given.get(key) is None]
    if absent:
        return problem_response(
            412, "Prefetch required",
            f"send the prefetch {', '.join(absent)} as declared by GET /cds-services",
        )  # fmt: skip
    check = answer_order_hook(session, runtime.predictors, orders, caller, body)
    cards = order_cards(check.order, check.findings, "Clinsight medication safety")
    if check.alternatives is not None and check.alternatives.suggestions:
        flagged = list({d.reference: d for d, _ in check.findings}.values())
        cards.append(alternatives_card(check.alternatives, flagged, check.source))
    return {"cards": cards}


def _card_url(request: Request, service: str, version: int) -> str:
    return f"{_base_url(request)}/cds-services/{service}/model-card/{version}"


def _deterioration(
    service: str,
    request: Request,
    caller: CdsCaller,
    runtime: RiskRuntime,
    session: DbSession,
    body: dict[str, Any],
) -> dict[str, Any] | JSONResponse:
    """The deterioration card of a progression service (412 without its prefetch)."""
    cds = runtime.progression_services[service]
    absent = cds.missing_prefetch(body)
    if absent:
        return problem_response(
            412, "Prefetch required",
            f"send the prefetch {', '.join(absent)} as declared by GET /cds-services",
        )  # fmt: skip
    assessment = answer_progression_view(session, runtime.predictors, cds, caller, body)
    version = assessment.result.model.version
    card_url = f"{_base_url(request)}/cds-services/{service}/model-card/{version}"
    return {"cards": [progression_card(assessment, cds.title, card_url)]}


@router.post("/{service}/feedback")
def feedback(
    service: str,
    caller: Ehr,
    session: DbSession,
    body: Annotated[dict[str, Any], Body(description="CDS Hooks feedback on cards.")],
) -> Response:
    """Record what the clinician did with each card (accepted or overridden, with reason)."""
    record_cds_feedback(session, service, caller, body)
    return Response(status_code=200)


@router.get("/{service}/model-card/{version}", response_class=PlainTextResponse)
def model_card(service: str, version: int, runtime: Runtime) -> str:
    """The Markdown model card of the model version behind the service's cards."""
    registry = runtime.predictors.registry_dir
    if service in runtime.progression_services:
        name = runtime.progression_services[service].model_name
        found = get_progression_model(registry, name, version, verify=False)
        return found.card_path.read_text(encoding="utf-8")
    cds = _service(runtime, service)
    get = get_survival_model if cds.kind == "survival" else get_risk_model
    return get(registry, cds.model_name, version, verify=False).card_path.read_text(
        encoding="utf-8"
    )
