"""Use case: assess a patient's risk with a registered risk model, explained and, for a stored
patient, access-checked and audited.

Inputs come as feature values (API, web form) or as a FHIR patient record mapped by a
feature spec; missing inputs are listed with the result, never filled in here. An input
outside its feature's plausible range (the model's task spec, or the FHIR feature spec's
rule) is refused: `ImplausibleInputError` names each such value and nothing is scored, so
no risk rests on a typing or coding error (the web form shows the message beside the
field; a CDS Hooks call answers with a warning card instead of a risk); a stored patient's
refusal is audited and committed before the error goes up. A patient outside the model's
validated population (`data.population`: age from the birth date where the patient is
known, else from the age input; sex likewise) is scored with a `PopulationWarning`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import date, datetime
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from clinsight.data.fhir import PatientRecord, parse_bundle
from clinsight.data.fhir_features import ExtractedFeatures, FhirFeatureSpec, MissingFeature
from clinsight.data.fhir_features import extract_features as extract_fhir_features
from clinsight.data.population import PopulationWarning, parse_sex
from clinsight.data.tabular import check_plausibility, coerce_features, input_errors
from clinsight.errors import DataError, ImplausibleInputError, InvalidInputError
from clinsight.inference.cache import ModelCache, RiskPredictor
from clinsight.inference.risk import RiskResult, risk_level
from clinsight.registry.risk import RiskModelVersion
from clinsight.security import records
from clinsight.security.access import require_patient_access
from clinsight.security.workspace import record_assessment
from clinsight.store import audit
from clinsight.store.actors import PatientAccess, Principal
from clinsight.store.audit import Outcome
from clinsight.store.repositories import StoreContext
from clinsight.tabular.explain import explain_patient

__all__ = [
    "age_on",
    "assess_features",
    "assess_fhir_bundle",
    "assess_record",
    "assess_stored_patient",
]


def age_on(birth_date: date, day: date) -> float:
    """Age in years on `day` (as a FHIR record's age: days / 365.25)."""
    return (day - birth_date).days / 365.25


def _population_warning(
    version: RiskModelVersion, values: Mapping[str, Any], age: float | None, sex: str | None
) -> PopulationWarning | None:
    """The warning when the patient is outside the version's population; `age` and `sex`
    (of a known patient) before the inputs' age and sex features."""
    population, task = version.population, version.task
    if population is None:
        return None
    if age is None and task.age_column is not None:
        given = values.get(task.age_column)
        try:
            age = None if given is None else float(given)
        except (TypeError, ValueError):
            age = None
    if sex is None and task.sex_column is not None:
        sex = parse_sex(values.get(task.sex_column), task.sex_codes)
    return population.check(age=age, sex=sex)


def _assess(
    predictor: RiskPredictor,
    extracted: ExtractedFeatures,
    start: float,
    *,
    age: float | None = None,
    sex: str | None = None,
) -> RiskResult:
    version = predictor.version
    names = version.task.feature_names
    invalid = input_errors(extracted.values, version.task)
    if invalid:
        raise InvalidInputError(invalid)
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
        population_warning=_population_warning(version, extracted.values, age, sex),
    )  # fmt: skip


def assess_features(
    predictor: RiskPredictor,
    values: Mapping[str, Any],
    *,
    age: float | None = None,
    sex: str | None = None,
) -> RiskResult:
    """Assess a patient given as feature values (absent or None: missing); `age` (years)
    and `sex` of a known patient, if given, decide the population check.

    Raises:
        ImplausibleInputError: a value lies outside its feature's plausible range.
        InvalidInputError: a value is invalid for its feature (named, in words).
        DataError: a name is not a model input, or no input is given at all.
    """
    start = time.perf_counter()
    names = predictor.version.task.feature_names
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise DataError(f"{unknown[0]!r} is not an input of this model; inputs: {names}.")
    clean = {n: values.get(n) for n in names}
    missing = tuple(MissingFeature(n, "not given") for n in names if clean[n] is None)
    extracted = ExtractedFeatures(clean, missing, {}, datetime.now().astimezone())
    return _assess(predictor, extracted, start, age=age, sex=sex)


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
    extracted = extract_fhir_features(record, spec, names, as_of=as_of)
    return _assess(
        predictor, extracted, start, age=record.age_at(extracted.as_of), sex=parse_sex(record.sex)
    )


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
    checked first, the age (from the birth date, today) and sex of the stored patient decide
    the population check, the assessment is audited (no PHI in the audit entry: model,
    version, sha256 of the inputs, level, whether outside the population) and committed. A
    refused input is audited too (level ``refused``, the features named) and committed
    before the error goes up.

    Raises:
        PermissionDeniedError: the actor may not open this patient.
        ModelNotFoundError: no such model or version.
        ImplausibleInputError, InvalidInputError, DataError: see `assess_features`.
    """
    access = require_patient_access(ctx.session, ctx.actor, patient_id, "risk.assess")
    patient = records.get_patient(ctx, patient_id)
    predictor = predictors.risk(model, version)
    audited = {"resource_id": patient_id, "patient_id": patient_id,
               "break_glass": access is PatientAccess.BREAK_GLASS}  # fmt: skip
    try:
        result = assess_features(
            predictor, values, age=age_on(patient.birth_date, date.today()), sex=patient.sex
        )
    except InvalidInputError as exc:
        ctx.audit(
            "risk.assess", "patient", outcome=Outcome.FAILURE, **audited,
            details={"model": predictor.version.name, "version": predictor.version.version,
                     "level": "refused", "invalid": ",".join(sorted(exc.fields))},
        )  # fmt: skip
        ctx.session.commit()  # the refusal is kept; the caller's rollback cannot undo it
        raise
    kept = record_assessment(
        ctx, patient_id, "risk", model_name=result.model.name,
        model_version=str(result.model.version), input_sha256=result.input_sha256,
        summary={"probability": round(result.probability, 6), "level": result.level,
                 "artifact_sha256": result.model.artifact_sha256,
                 "outcome": result.model.task.positive_label,
                 "outside_population": result.population_warning is not None},
    )  # fmt: skip
    ctx.audit(
        "risk.assess", "patient", **audited,
        details={"model": result.model.name, "version": result.model.version,
                 "input_sha256": result.input_sha256, "level": result.level,
                 "outside_population": result.population_warning is not None,
                 "assessment_id": kept.id},
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

    A refused record (an implausible value) is audited (level ``refused``) and committed
    before the error goes up.

    Raises:
        ImplausibleInputError: a mapped value lies outside its plausible range.
        DataError: not a valid Bundle with one Patient, or it supplies none of the inputs.
        ModelNotFoundError: `model` has no production version.
    """
    record = parse_bundle(json.dumps(bundle), source="request body")
    predictor = predictors.risk(model)
    try:
        result = assess_record(predictor, record, spec)
    except InvalidInputError as exc:
        audit.append(
            session, action="risk.assess_fhir", resource_type="bundle", actor_id=actor.user_id,
            outcome=Outcome.FAILURE,
            details={"model": predictor.version.name, "version": predictor.version.version,
                     "input_sha256": record.source_sha256, "level": "refused",
                     "invalid": ",".join(sorted(exc.fields))},
        )  # fmt: skip
        session.commit()  # the refusal is kept
        raise
    audit.append(
        session, action="risk.assess_fhir", resource_type="bundle", actor_id=actor.user_id,
        details={"model": result.model.name, "version": result.model.version,
                 "input_sha256": record.source_sha256, "level": result.level,
                 "outside_population": result.population_warning is not None},
    )  # fmt: skip
    session.commit()
    return result, record
