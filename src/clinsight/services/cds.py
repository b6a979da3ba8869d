"""Use cases of HL7 CDS Hooks: answer a ``patient-view`` call with the patient's risk,
predicted survival or deterioration risk, and record what the clinician did with the cards.
EHRs, not users, are the callers: each call and each feedback item is audited with the
caller's issuer and no PHI, and committed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from clinsight.data.fhir_features import extract_features
from clinsight.data.visit_tasks import CodedVisit
from clinsight.errors import (
    DataError,
    ImplausibleInputError,
    ModelNotFoundError,
    OutOfPopulationError,
)
from clinsight.inference.cache import ModelCache
from clinsight.inference.progression import ProgressionAssessment
from clinsight.inference.risk import RiskResult
from clinsight.inference.survival import SurvivalResult
from clinsight.interop.cds_hooks import CdsCaller, CdsService, record_from_prefetch
from clinsight.interop.cds_orders import (
    DraftOrder,
    OrderRequest,
    OrderService,
    parse_order_request,
)
from clinsight.interop.cds_progression import ProgressionCdsService, bundle_from_prefetch
from clinsight.recommend.matrix import PatientContext
from clinsight.recommend.safety import Removal, check_treatments
from clinsight.recommend.suggest import SuggestionList, suggest
from clinsight.registry.versions import ModelKind
from clinsight.services.progression import assess_progression, read_posted_stay
from clinsight.services.recommendation import interaction_table
from clinsight.services.risk import assess_record
from clinsight.services.survival import predict_survival
from clinsight.store import audit

__all__ = [
    "OrderCheck",
    "answer_order_hook",
    "answer_patient_view",
    "answer_progression_view",
    "answer_survival_view",
    "record_cds_feedback",
]


def answer_patient_view(
    session: Session,
    predictors: ModelCache,
    cds: CdsService,
    caller: CdsCaller,
    request: Mapping[str, Any],
) -> RiskResult:
    """The risk of the patient in a ``patient-view`` request's prefetch, by the service's
    production model. Audited (issuer, call id, model, version, level) and committed.

    Raises:
        ImplausibleInputError: a value of the record is implausible; the refusal is
            audited (level ``refused``) and committed first.
        DataError: the prefetch is malformed or supplies none of the model's inputs.
        ModelNotFoundError: the service's model has no production version.
    """
    record = record_from_prefetch(cds, request)
    try:
        result = assess_record(predictors.risk(cds.model_name), record, cds.spec)
    except ImplausibleInputError as exc:
        audit.append(
            session, action="cds.patient_view", resource_type="cds_service", resource_id=cds.id,
            details={"issuer": caller.issuer, "jti": caller.jti, "model": cds.model_name,
                     "level": "refused", "implausible": ",".join(sorted(exc.fields)),
                     "hook_instance": str(request.get("hookInstance", ""))[:64]},
        )  # fmt: skip
        session.commit()
        raise
    audit.append(
        session, action="cds.patient_view", resource_type="cds_service", resource_id=cds.id,
        details={"issuer": caller.issuer, "jti": caller.jti, "model": result.model.name,
                 "version": result.model.version, "level": result.level,
                 "outside_population": result.population_warning is not None,
                 "hook_instance": str(request.get("hookInstance", ""))[:64]},
    )  # fmt: skip
    session.commit()
    return result


def answer_survival_view(
    session: Session,
    predictors: ModelCache,
    cds: CdsService,
    caller: CdsCaller,
    request: Mapping[str, Any],
) -> SurvivalResult:
    """The predicted survival (1, 3 and 5 years) of the patient in a ``patient-view``
    request's prefetch, by the service's production survival model, its inputs read by the
    service's feature spec. Audited (issuer, call id, model, version, outcome) and committed.

    Raises:
        ImplausibleInputError, OutOfPopulationError: an input is implausible or outside the
            training population; the refusal is audited (level ``refused``) and committed.
        DataError: the prefetch is malformed or supplies none of the model's inputs.
        ModelNotFoundError: the service's model has no production version.
    """
    record = record_from_prefetch(cds, request)
    predictor = predictors.survival(cds.model_name)
    names = predictor.version.task.feature_names
    values = extract_features(record, cds.spec, names).values
    details = {"issuer": caller.issuer, "jti": caller.jti, "model": cds.model_name,
               "hook_instance": str(request.get("hookInstance", ""))[:64]}  # fmt: skip
    try:
        result = predict_survival(predictor, values)
    except (ImplausibleInputError, OutOfPopulationError) as exc:
        audit.append(
            session, action="cds.patient_view", resource_type="cds_service", resource_id=cds.id,
            details={**details, "level": "refused", "fields": ",".join(sorted(exc.fields))},
        )  # fmt: skip
        session.commit()
        raise
    audit.append(
        session, action="cds.patient_view", resource_type="cds_service", resource_id=cds.id,
        details={**details, "version": result.model.version, "level": "info",
                 "input_sha256": result.input_sha256},
    )  # fmt: skip
    session.commit()
    return result


def answer_progression_view(
    session: Session,
    predictors: ModelCache,
    cds: ProgressionCdsService,
    caller: CdsCaller,
    request: Mapping[str, Any],
) -> ProgressionAssessment:
    """The deterioration risk of the patient in a ``patient-view`` request's prefetch, by
    the service's production progression model. Audited (issuer, call id, model, version,
    level; no PHI) and committed; a refused prefetch is audited (level ``refused``) first.

    Raises:
        DataError: the prefetch is malformed, names an unknown variable or unit, goes back
            in time, or holds no usable Observation.
        ModelNotFoundError: the service's model has no production version.
    """
    predictor = predictors.progression(cds.model_name)
    where: dict[str, str | int | float | None] = {
        "issuer": caller.issuer, "jti": caller.jti, "model": predictor.version.name,
        "version": predictor.version.version,
        "hook_instance": str(request.get("hookInstance", ""))[:64],
    }  # fmt: skip
    try:
        bundle = bundle_from_prefetch(cds, request)
        patient = str((request.get("context") or {}).get("patientId") or "cds-patient")
        record, lines, ids, sha = read_posted_stay(patient, bundle=bundle)
        assessment = assess_progression(predictor, record, lines, ids, sha)
    except DataError:
        audit.append(
            session, action="cds.patient_view", resource_type="cds_service", resource_id=cds.id,
            outcome=audit.Outcome.FAILURE, details={**where, "level": "refused"},
        )  # fmt: skip
        session.commit()
        raise
    audit.append(
        session, action="cds.patient_view", resource_type="cds_service", resource_id=cds.id,
        details={**where, "level": assessment.level, "input_sha256": sha},
    )  # fmt: skip
    session.commit()
    return assessment


@dataclass(frozen=True)
class OrderCheck:
    """The drafts of an order hook call flagged by the safety filter (with why) and the
    recommender's alternatives (None when nothing was flagged or no model serves)."""

    order: OrderRequest
    findings: tuple[tuple[DraftOrder, Removal], ...]
    alternatives: SuggestionList | None
    source: str
    """The label of the alternatives card (the model and version)."""


def _order_context(order: OrderRequest, flagged: frozenset[str]) -> PatientContext:
    """The order call's patient: the prefetch's conditions and active drugs (also as one
    undated visit, for the sequence recommender)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    age = None
    if order.birth_date is not None:
        age = (now.date() - order.birth_date).days / 365.25
    others = [d.key for d in order.drafts if d.key is not None and d.key not in flagged]
    active = frozenset([*order.active, *others])
    return PatientContext(
        patient_id=order.patient_id, moment=now, conditions=frozenset(order.conditions),
        history={key: 1.0 for key in active}, past_conditions=frozenset(order.conditions),
        active_drugs=active, allergies=order.allergies, age=age, sex=order.sex,
        names={**order.conditions, **order.names},
        visits=(CodedVisit("prefetch", now, frozenset(order.conditions) | active),),
    )  # fmt: skip


def answer_order_hook(
    session: Session,
    predictors: ModelCache,
    service: OrderService,
    caller: CdsCaller,
    request: Mapping[str, Any],
) -> OrderCheck:
    """Check the draft medication orders of an ``order-select`` / ``order-sign`` call
    against the patient's active medications (and each other) and allergies; when one is
    flagged, draw alternatives for the active conditions from the service's production
    recommender (none when it has no production version). Audited (issuer, call id, drafts,
    flags; no PHI) and committed.

    Raises:
        DataError: the request is malformed (see `parse_order_request`).
    """
    order = parse_order_request(service, request)
    table = interaction_table(service.interactions)
    findings = []
    for draft in order.drafts:
        if draft.key is None:
            continue
        others = [d.key for d in order.drafts if d.key is not None and d is not draft]
        result = check_treatments(
            [draft.key], active=[*order.active, *(k for k in others if k != draft.key)],
            allergies=order.allergies, table=table, names=order.names,
        )  # fmt: skip
        findings += [(draft, removal) for removal in result.removed]
    alternatives, source = None, ""
    model_version = 0
    if findings:
        try:
            loaded = predictors.load(ModelKind.RECOMMENDATION, service.model_name)
        except ModelNotFoundError:
            loaded = None
        if loaded is not None:
            recommender, data = loaded.model
            flagged = frozenset(d.key for d, _ in findings if d.key is not None)
            context = _order_context(order, flagged)
            alternatives = suggest(recommender, data, context, table, size=3,
                                   min_support=int(getattr(loaded.version, "min_support", 2)),
                                   explain=False)  # fmt: skip
            model_version = loaded.version.version
            source = f"Clinsight {service.model_name} v{model_version}"
    audit.append(
        session, action=f"cds.{service.hook.replace('-', '_')}", resource_type="cds_service",
        resource_id=service.id,
        details={"issuer": caller.issuer, "jti": caller.jti, "drafts": len(order.drafts),
                 "flagged": ",".join(sorted({r.reason for _, r in findings})),
                 "alternatives": len(alternatives.suggestions) if alternatives else 0,
                 "model": service.model_name, "version": model_version,
                 "hook_instance": str(request.get("hookInstance", ""))[:64]},
    )  # fmt: skip
    session.commit()
    return OrderCheck(order, tuple(findings), alternatives, source)


def record_cds_feedback(
    session: Session, service: str, caller: CdsCaller, request: Mapping[str, Any]
) -> None:
    """Audit each feedback item (card, accepted or overridden, override code). Committed,
    all or none.

    Raises:
        DataError: no feedback list, or an item without card, outcome or a valid reason.
    """
    items = request.get("feedback")
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
