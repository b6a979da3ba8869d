"""Use cases of HL7 CDS Hooks: answer a ``patient-view`` call with the patient's risk,
predicted survival or deterioration risk, and record what the clinician did with the cards.
EHRs, not users, are the callers: each call and each feedback item is audited with the
caller's issuer and no PHI, and committed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from clinsight.data.fhir_features import extract_features
from clinsight.errors import DataError, ImplausibleInputError, OutOfPopulationError
from clinsight.inference.cache import ModelCache
from clinsight.inference.progression import ProgressionAssessment
from clinsight.inference.risk import RiskResult
from clinsight.inference.survival import SurvivalResult
from clinsight.interop.cds_hooks import CdsCaller, CdsService, record_from_prefetch
from clinsight.interop.cds_progression import ProgressionCdsService, bundle_from_prefetch
from clinsight.services.progression import assess_progression, read_posted_stay
from clinsight.services.risk import assess_record
from clinsight.services.survival import predict_survival
from clinsight.store import audit

__all__ = [
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
