"""Use case: assess a patient's risk with a registered risk model, explained and, for a stored
patient, access-checked and audited.

Inputs come as feature values (API, web form) or as a FHIR patient record mapped by a
feature spec; missing inputs are listed with the result, never filled in here. An input
outside its feature's plausible range (the model's task spec, or the FHIR feature spec's
rule) is refused: `ImplausibleInputError` names each such value and nothing is scored, so
no risk rests on a typing or coding error (the web form shows the message beside the
field; a CDS Hooks call answers with a warning card instead of a risk).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from clinsight.data.fhir import PatientRecord, parse_bundle
from clinsight.data.fhir_features import ExtractedFeatures, FhirFeatureSpec, MissingFeature
from clinsight.data.fhir_features import extract_features as extract_fhir_features
from clinsight.data.tabular import check_plausibility, coerce_features
from clinsight.errors import DataError, ImplausibleInputError
from clinsight.inference.cache import ModelCache, RiskPredictor
from clinsight.inference.risk import RiskResult, risk_level
from clinsight.security.access import require_patient_access
from clinsight.store import audit
from clinsight.store.actors import PatientAccess, Principal
from clinsight.store.repositories import StoreContext
from clinsight.tabular.explain import explain_patient

__all__ = [
    "assess_features",
    "assess_fhir_bundle",
    "assess_record",
    "assess_stored_patient",
]


def _assess(predictor: RiskPredictor, extracted: ExtractedFeatures, start: float) -> RiskResult:
    version = predictor.version
    names = version.task.feature_names
    raw = extracted.frame()[names]
    frame = coerce_features(raw, version.task)
    _, report = check_plausibility(raw, frame, version.task)
    refused = {item.feature: item.message for item in extracted.implausible}
    for item in report.implausible:
        refused.setdefault(item.feature, replace(item, row=None).message)
    if refused:
        raise ImplausibleInputError(refused)
    if all(extracted.values.get(n) is None for n in names):
        raise DataError(
            f"none of the inputs of {version.name} ({', '.join(names)}) is available; "
            "a risk would rest on imputed values only."
        )
    explanation = explain_patient(
        predictor.model, frame, version.reference_frame, units=version.task.units
    )
    canonical = json.dumps(extracted.values, sort_keys=True, default=str)
    probability = float(np.clip(explanation.probability, 0.0, 1.0))
    return RiskResult(
        model=version, probability=probability,
        level=risk_level(probability, version.thresholds), explanation=explanation,
        inputs=dict(extracted.values), missing=extracted.missing, basis=extracted.references,
        input_sha256=hashlib.sha256(canonical.encode()).hexdigest(),
        latency_ms=(time.perf_counter() - start) * 1000,
    )  # fmt: skip


def assess_features(predictor: RiskPredictor, values: Mapping[str, Any]) -> RiskResult:
    """Assess a patient given as feature values (absent or None: missing).

    Raises:
        ImplausibleInputError: a value lies outside its feature's plausible range.
        DataError: a value is invalid for its feature (named), a name is not a model
            input, or no input is given at all.
    """
    start = time.perf_counter()
    names = predictor.version.task.feature_names
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise DataError(f"{unknown[0]!r} is not an input of this model; inputs: {names}.")
    clean = {n: values.get(n) for n in names}
    missing = tuple(MissingFeature(n, "not given") for n in names if clean[n] is None)
    extracted = ExtractedFeatures(clean, missing, {}, datetime.now().astimezone())
    return _assess(predictor, extracted, start)


def assess_record(
    predictor: RiskPredictor,
    record: PatientRecord,
    spec: FhirFeatureSpec,
    *,
    as_of: datetime | None = None,
) -> RiskResult:
    """Assess a FHIR patient record, its features mapped by `spec` at `as_of` (default now).

    Raises:
        ImplausibleInputError: a mapped value lies outside its plausible range.
        DataError: the mapped record supplies none of the model's inputs.
    """
    start = time.perf_counter()
    names = predictor.version.task.feature_names
    return _assess(predictor, extract_fhir_features(record, spec, names, as_of=as_of), start)


def assess_stored_patient(
    ctx: StoreContext,
    predictors: ModelCache,
    patient_id: str,
    values: Mapping[str, Any],
    *,
    model: str,
    version: int | None = None,
) -> RiskResult:
    """Assess a patient of the store with `version` of `model` (default: production): access
    checked first, the assessment audited (no PHI in the audit entry: model, version and the
    sha256 of the inputs) and committed.

    Raises:
        PermissionDeniedError: the actor may not open this patient.
        ModelNotFoundError: no such model or version.
        DataError: see `assess_features`.
    """
    access = require_patient_access(ctx.session, ctx.actor, patient_id, "risk.assess")
    result = assess_features(predictors.risk(model, version), values)
    ctx.audit(
        "risk.assess", "patient", resource_id=patient_id, patient_id=patient_id,
        details={"model": result.model.name, "version": result.model.version,
                 "input_sha256": result.input_sha256, "level": result.level},
        break_glass=access is PatientAccess.BREAK_GLASS,
    )  # fmt: skip
    ctx.session.commit()
    return result


def assess_fhir_bundle(
    session: Session,
    actor: Principal,
    predictors: ModelCache,
    model: str,
    spec: FhirFeatureSpec,
    bundle: Mapping[str, Any],
) -> tuple[RiskResult, PatientRecord]:
    """Assess the one patient of a FHIR R4 Bundle with the production version of `model`
    (nothing stored): the result and the parsed record. The call is audited (model,
    version, sha256 of the bundle; no PHI) and committed.

    Raises:
        DataError: not a valid Bundle with one Patient, or it supplies none of the inputs.
        ModelNotFoundError: `model` has no production version.
    """
    record = parse_bundle(json.dumps(bundle), source="request body")
    result = assess_record(predictors.risk(model), record, spec)
    audit.append(
        session, action="risk.assess_fhir", resource_type="bundle", actor_id=actor.user_id,
        details={"model": result.model.name, "version": result.model.version,
                 "input_sha256": record.source_sha256},
    )  # fmt: skip
    session.commit()
    return result, record
