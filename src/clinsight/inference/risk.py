"""The result of a risk model for one patient: calibrated risk, level, explanation, inputs.

Shared by the risk use case and its FHIR and CDS Hooks renderings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from clinsight.data.fhir_features import MissingFeature
from clinsight.data.population import PopulationWarning
from clinsight.registry.risk import RiskModelVersion
from clinsight.tabular.explain import Explanation

__all__ = ["RiskLevel", "RiskResult", "risk_level"]

RiskLevel = Literal["info", "warning", "critical"]


@dataclass(frozen=True)
class RiskResult:
    """A calibrated risk, its level, the explanation, the inputs used and those missing, and
    the warning when the patient lies outside the model's validated population."""

    model: RiskModelVersion
    probability: float
    level: RiskLevel
    explanation: Explanation
    inputs: dict[str, float | str | None]
    missing: tuple[MissingFeature, ...]
    basis: tuple[str, ...]
    input_sha256: str
    latency_ms: float
    population_warning: PopulationWarning | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for the CLI and the API)."""
        return {
            "model": {"name": self.model.name, "version": self.model.version},
            "probability": self.probability, "level": self.level,
            "thresholds": self.model.thresholds, "inputs": self.inputs,
            "missing": [{"feature": m.feature, "reason": m.reason} for m in self.missing],
            "basis": list(self.basis), "explanation": self.explanation.to_dict(),
            "input_sha256": self.input_sha256, "latency_ms": self.latency_ms,
            "validated_population": (
                self.model.population.to_dict() if self.model.population else None
            ),
            "warnings": [self.population_warning.to_dict()] if self.population_warning else [],
        }  # fmt: skip


def risk_level(probability: float, thresholds: Mapping[str, float]) -> RiskLevel:
    """``critical`` at or above the critical threshold, ``warning`` at or above the warning
    one, else ``info`` (the thresholds are on the calibrated probability)."""
    if probability >= thresholds["critical"]:
        return "critical"
    if probability >= thresholds["warning"]:
        return "warning"
    return "info"
