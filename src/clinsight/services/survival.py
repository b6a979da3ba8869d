"""Use case: a patient's predicted survival from a registered survival model, checked
against the model's intended population and, for a stored patient, access-checked and
audited.

Refused before anything is computed: an input outside its plausible range
(`ImplausibleInputError`), a numeric input outside the training population's range or a
category it never had (`OutOfPopulationError`), no input at all, and a horizon beyond the
longest one the training follow-up supports (the message names that horizon).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import pandas as pd

from clinsight.data.survival import DAYS_PER_YEAR
from clinsight.data.tabular import FeatureType, check_plausibility, coerce_features
from clinsight.errors import DataError, ImplausibleInputError, OutOfPopulationError
from clinsight.inference.cache import ModelCache, SurvivalPredictor
from clinsight.inference.survival import SurvivalResult, predict_patient
from clinsight.security.access import require_patient_access
from clinsight.security.workspace import record_assessment
from clinsight.store.actors import PatientAccess
from clinsight.store.repositories import StoreContext

__all__ = ["DEFAULT_HORIZONS", "assess_stored_survival", "check_horizons", "predict_survival"]

DEFAULT_HORIZONS = (1.0, 3.0, 5.0)


def check_horizons(predictor: SurvivalPredictor, horizons: Sequence[float]) -> tuple[float, ...]:
    """The horizons (years, ascending) if each is positive and within the follow-up.

    Raises:
        DataError: no horizon, one <= 0, or one beyond the longest supported horizon.
    """
    if not horizons:
        raise DataError("give at least one horizon in years, e.g. 1, 3 and 5.")
    longest = predictor.version.max_horizon_days / DAYS_PER_YEAR
    for years in horizons:
        if not math.isfinite(years) or years <= 0:
            raise DataError(f"horizon {years:g} years must be a positive number of years.")
        if years > longest:
            raise DataError(
                f"horizon {years:g} years is beyond the follow-up of the training data; the "
                f"longest supported horizon is {longest:.1f} years "
                f"({predictor.version.max_horizon_days:.0f} days)."
            )
    return tuple(sorted(float(h) for h in horizons))


def _population(predictor: SurvivalPredictor, frame: pd.DataFrame) -> None:
    version = predictor.version
    ranges = version.population.get("ranges", {})
    outside: dict[str, str] = {}
    for feature in version.task.features:
        value, seen = frame[feature.name].iloc[0], ranges.get(feature.name)
        if seen is None or pd.isna(value):
            continue
        unit = f" {feature.unit}" if feature.unit else ""
        if feature.type is FeatureType.CATEGORICAL and str(value) not in seen:
            outside[feature.name] = (
                f"{feature.name} {value!r} never occurred in the training population "
                f"({', '.join(seen)})"
            )
        elif feature.type is not FeatureType.CATEGORICAL and not seen[0] <= value <= seen[1]:
            outside[feature.name] = (
                f"{feature.name} {value:g}{unit} is outside the training population's range "
                f"{seen[0]:g}-{seen[1]:g}{unit}"
            )
    if outside:
        raise OutOfPopulationError(outside)


def predict_survival(
    predictor: SurvivalPredictor,
    values: Mapping[str, Any],
    horizons: Sequence[float] = DEFAULT_HORIZONS,
) -> SurvivalResult:
    """The survival of a patient given as feature values (absent or None: missing).

    Raises:
        ImplausibleInputError: a value lies outside its plausible range.
        OutOfPopulationError: a value lies outside the training population.
        DataError: a value is invalid, a name is not an input, no input is given, or a
            horizon is beyond the supported follow-up.
    """
    version = predictor.version
    names = version.task.feature_names
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise DataError(f"{unknown[0]!r} is not an input of this model; inputs: {names}.")
    years = check_horizons(predictor, horizons)
    clean = {n: values.get(n) for n in names}
    if all(v is None for v in clean.values()):
        raise DataError(
            f"none of the inputs of {version.name} is given; a survival curve would rest "
            "on imputed values only."
        )
    raw = pd.DataFrame([clean], index=["input"]).astype(object)
    frame = coerce_features(raw, version.task)
    _, report = check_plausibility(raw, frame, version.task)
    if report.implausible:
        raise ImplausibleInputError(
            {i.feature: replace(i, row=None).message for i in report.implausible}
        )
    _population(predictor, frame)
    canonical = json.dumps(clean, sort_keys=True, default=str)
    return predict_patient(
        predictor, frame, years, inputs=clean,
        missing=tuple(n for n, v in clean.items() if v is None),
        input_sha256=hashlib.sha256(canonical.encode()).hexdigest(),
    )  # fmt: skip


def assess_stored_survival(
    ctx: StoreContext,
    predictors: ModelCache,
    patient_id: str,
    values: Mapping[str, Any],
    *,
    model: str,
    version: int | None = None,
    horizons: Sequence[float] = DEFAULT_HORIZONS,
) -> SurvivalResult:
    """A stored patient's survival with `version` of `model` (default: production): access
    checked first, the prediction audited (model, version, sha256 of the inputs; no PHI)
    and committed.

    Raises:
        PermissionDeniedError: the actor may not open this patient.
        ModelNotFoundError: no such model or version.
        DataError: see `predict_survival`.
    """
    access = require_patient_access(ctx.session, ctx.actor, patient_id, "survival.assess")
    result = predict_survival(predictors.survival(model, version), values, horizons)
    kept = record_assessment(
        ctx, patient_id, "survival", model_name=result.model.name,
        model_version=str(result.model.version), input_sha256=result.input_sha256,
        summary={"event": result.model.event_label,
                 "artifact_sha256": result.model.artifact_sha256,
                 "risks": [{"years": h.years, "risk": round(h.risk, 6)}
                           for h in result.horizons]},
    )  # fmt: skip
    ctx.audit(
        "survival.assess", "patient", resource_id=patient_id, patient_id=patient_id,
        details={"model": result.model.name, "version": result.model.version,
                 "input_sha256": result.input_sha256, "assessment_id": kept.id,
                 "horizons_years": ",".join(f"{h.years:g}" for h in result.horizons)},
        break_glass=access is PatientAccess.BREAK_GLASS,
    )  # fmt: skip
    ctx.session.commit()
    return result
