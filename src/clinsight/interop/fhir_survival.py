"""FHIR R4 out: a predicted survival as a `RiskAssessment` with one prediction per horizon.

Each prediction is the probability of the event by that horizon (``probabilityDecimal``),
over ``whenRange`` from 0 to the horizon in years (UCUM ``a``), with the band of the
model's bootstrap refits in the ``rationale`` (FHIR allows one ``probability[x]``);
``method`` names the model, version and artifact sha256; the note gives the factors
that move the risk and the missing inputs. Validated with fhir.resources.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from clinsight.inference.survival import SurvivalResult
from clinsight.interop.fhir_out import (
    assessment_shell,
    risk_assessment_json,
    validated_assessment,
)

__all__ = ["factors_text", "survival_risk_assessment"]

_UCUM = "http://unitsofmeasure.org"


def factors_text(result: SurvivalResult, top: int = 3) -> str:
    """The top factors as one line: ``pnodes 12 nodes raises the 5-year risk by 9.1 points``."""
    years = result.headline.years
    parts = []
    for factor in result.factors[:top]:
        value = "missing" if factor.value is None else f"{factor.value}"
        unit = f" {factor.unit}" if factor.unit and factor.value is not None else ""
        parts.append(f"{factor.feature} {value}{unit} {factor.direction} the {years:g}-year "
                     f"risk by {abs(factor.effect) * 100:.1f} points")  # fmt: skip
    return "; ".join(parts)


def _years(value: float) -> dict[str, Any]:
    return {"value": value, "unit": "years", "system": _UCUM, "code": "a"}


def _prediction(result: SurvivalResult, index: int) -> dict[str, Any]:
    horizon = result.horizons[index]
    rationale = (
        f"Probability of {result.model.event_label} within {horizon.years:g} years: "
        f"{horizon.risk:.1%}"
    )
    if horizon.low is not None and horizon.high is not None:
        rationale += f" (95 % band of bootstrap refits {horizon.low:.1%}-{horizon.high:.1%})"
    return {
        "outcome": {"text": result.model.event_label},
        "probabilityDecimal": round(horizon.risk, 6),
        "whenRange": {"low": _years(0), "high": _years(horizon.years)},
        "rationale": rationale + ".",
    }


def survival_risk_assessment(
    result: SurvivalResult, subject: str, *, occurrence: datetime | None = None
) -> dict[str, Any]:
    """The `RiskAssessment` of `result` about `subject` (``Patient/<id>``) as plain JSON.

    Raises:
        DataError: the resource does not validate (e.g. a malformed subject reference).
    """
    model = result.model
    note = f"Factors: {factors_text(result)}."
    if result.missing:
        note += f" Missing inputs (imputed by the model): {', '.join(result.missing)}."
    resource = assessment_shell(
        model.name, model.version, model.artifact_sha256, subject, occurrence, kind="survival"
    )
    resource["prediction"] = [_prediction(result, i) for i in range(len(result.horizons))]
    resource["note"] = [{"text": note}]
    return risk_assessment_json(validated_assessment(resource))
