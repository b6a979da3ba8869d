"""FHIR R4 out: a progression (deterioration) risk as a `RiskAssessment` whose ``basis``
references the Observations it was computed from.

One prediction: the calibrated probability of in-hospital death (``probabilityDecimal``)
with the alert level in the ``rationale``; ``method`` names the model, version and artifact
sha256; the note gives the variables and hours that drove the risk. Validated with
fhir.resources.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from clinsight.inference.progression import ProgressionAssessment
from clinsight.interop.fhir_out import (
    assessment_shell,
    risk_assessment_json,
    validated_assessment,
)

__all__ = ["drivers_text", "progression_risk_assessment"]


def drivers_text(assessment: ProgressionAssessment, top: int = 3) -> str:
    """The top drivers as one line: ``GCS in hours 12-13 raises the risk``."""
    parts = [
        f"{d.variable} in hours {d.hours[0]:g}-{d.hours[1]:g} {d.direction} the risk"
        for d in assessment.result.drivers[:top]
    ]
    return "; ".join(parts) or "no single variable stood out"


def progression_risk_assessment(
    assessment: ProgressionAssessment, subject: str, *, occurrence: datetime | None = None
) -> dict[str, Any]:
    """The `RiskAssessment` of `assessment` about `subject` (``Patient/<id>``) as JSON.

    Raises:
        DataError: the resource does not validate (e.g. a malformed subject reference).
    """
    result = assessment.result
    model = result.model
    outcome = str(model.task.get("description") or "in-hospital death")
    resource = assessment_shell(
        model.name, model.version, model.artifact_sha256, subject, occurrence,
        kind="progression",
    )  # fmt: skip
    level = assessment.level
    cut = "" if model.thresholds is None else (
        f" (warning from {float(model.thresholds['warning']):.1%}, critical from "
        f"{float(model.thresholds['critical']):.1%}, chosen on validation)")  # fmt: skip
    resource["prediction"] = [{
        "outcome": {"text": outcome},
        "probabilityDecimal": round(result.risk, 6),
        "rationale": f"Calibrated probability {result.risk:.1%}; alert level {level}{cut}.",
    }]  # fmt: skip
    if assessment.observation_ids:
        resource["basis"] = [{"reference": f"Observation/{i}"} for i in assessment.observation_ids]
    note = f"Drivers: {drivers_text(assessment)}."
    if result.skipped:
        note += f" Excluded: {'; '.join(result.skipped)}."
    resource["note"] = [{"text": note}]
    return risk_assessment_json(validated_assessment(resource))
