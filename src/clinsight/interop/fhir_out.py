"""FHIR R4 out: a risk assessment as a `RiskAssessment` resource, validated with fhir.resources.

The prediction carries the calibrated probability (``probabilityDecimal``) and a qualitative
risk from the model's thresholds; ``basis`` cites the resources the inputs came from (the
observations of a FHIR record); ``method`` names the model, its version and artifact sha256;
the note lists the top contributing factors and any missing inputs. A patient outside the
model's validated population gets a first note saying so, and the same warning as an
extension (`POPULATION_WARNING_URL`).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B.riskassessment import RiskAssessment
from pydantic import ValidationError

from clinsight import __version__
from clinsight.errors import DataError
from clinsight.inference.risk import RiskLevel, RiskResult

__all__ = [
    "MODEL_SYSTEM",
    "POPULATION_WARNING_URL",
    "QUALITATIVE_RISK",
    "assessment_shell",
    "explanation_text",
    "risk_assessment",
    "risk_assessment_json",
    "validated_assessment",
]

MODEL_SYSTEM = "urn:clinsight:model"
POPULATION_WARNING_URL = "urn:clinsight:outside-validated-population"
_RISK_SYSTEM = "http://terminology.hl7.org/CodeSystem/risk-probability"
QUALITATIVE_RISK: dict[RiskLevel, tuple[str, str]] = {
    "info": ("low", "Low likelihood"),
    "warning": ("moderate", "Moderate likelihood"),
    "critical": ("high", "High likelihood"),
}


def explanation_text(result: RiskResult, top: int = 3) -> str:
    """The top contributing factors as one line, e.g. ``Glucose 148 mg/dL raised the risk``."""
    parts = []
    for item in result.explanation.top(top):
        value = "missing" if item.value is None else _value(item.value, item.unit)
        verb = "raised" if item.direction == "increases" else "lowered"
        parts.append(f"{item.feature} {value} {verb} the risk")
    return "; ".join(parts)


def _value(value: Any, unit: str | None) -> str:
    text = f"{value:.3g}" if isinstance(value, float) else str(value)
    return f"{text} {unit}" if unit else text


def risk_assessment(
    result: RiskResult,
    subject: str,
    *,
    occurrence: datetime | None = None,
    encounter: str | None = None,
) -> RiskAssessment:
    """The `RiskAssessment` of `result` about `subject` (``Patient/<id>``), validated.

    Raises:
        DataError: the resource does not validate (e.g. a malformed subject reference).
    """
    model = result.model
    missing = ", ".join(f"{m.feature} ({m.reason})" for m in result.missing)
    note = f"Top factors: {explanation_text(result)}."
    if missing:
        note += f" Missing inputs (imputed by the model): {missing}."
    code, display = QUALITATIVE_RISK[result.level]
    resource = assessment_shell(
        model.name, model.version, model.artifact_sha256, subject, occurrence, kind=None
    )
    resource.update({
        "basis": [{"reference": ref} for ref in result.basis],
        "prediction": [{
            "outcome": {"text": model.task.positive_label},
            "probabilityDecimal": round(result.probability, 6),
            "qualitativeRisk": {"coding": [{"system": _RISK_SYSTEM, "code": code,
                                            "display": display}]},
        }],
        "note": [{"text": note}],
    })  # fmt: skip
    warning = result.population_warning
    if warning is not None:
        resource["note"].insert(0, {"text": warning.message})
        resource["extension"] = [{"url": POPULATION_WARNING_URL, "valueString": warning.message}]
    if encounter:
        resource["encounter"] = {"reference": encounter}
    if not resource["basis"]:
        del resource["basis"]
    return validated_assessment(resource)


def assessment_shell(
    name: str, version: int, artifact_sha256: str, subject: str,
    occurrence: datetime | None, *, kind: str | None,
) -> dict[str, Any]:  # fmt: skip
    """The parts every Clinsight RiskAssessment shares: id, status, subject, time and the
    model that made it (`kind` names the model kind in the method text, e.g. "survival")."""
    what = f"{name} v{version} {kind} model" if kind else f"{name} v{version}"
    return {
        "resourceType": "RiskAssessment",
        "id": str(uuid.uuid4()),
        "status": "final",
        "subject": {"reference": subject},
        "occurrenceDateTime": (occurrence or datetime.now(UTC)).isoformat(timespec="seconds"),
        "method": {
            "coding": [{"system": MODEL_SYSTEM, "code": f"{name}/{version}",
                        "display": f"Clinsight {name} v{version}"}],
            "text": f"{what} (artifact sha256 {artifact_sha256}, Clinsight {__version__})",
        },
    }  # fmt: skip


def validated_assessment(resource: dict[str, Any]) -> RiskAssessment:
    """`resource` checked against the FHIR R4B RiskAssessment model.

    Raises:
        DataError: it does not validate.
    """
    try:
        return RiskAssessment.model_validate(resource)
    except ValidationError as exc:
        raise DataError(f"the RiskAssessment does not validate: {exc}") from exc


def risk_assessment_json(assessment: RiskAssessment) -> dict[str, Any]:
    """The resource as plain JSON (no empty elements)."""
    data: dict[str, Any] = json.loads(assessment.model_dump_json(exclude_none=True))
    return data
