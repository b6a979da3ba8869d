"""A CDS Hooks ``patient-view`` deterioration card from a progression model.

The service asks the EHR (prefetch) for the Patient and the Observations of the spec's
variables (by their LOINC codes); the stay starts at the earliest of them (see
`data.progression_fhir`). The card's summary (< 140 characters) gives the calibrated risk
of in-hospital death; the detail (Markdown) the variables and hours that drove it and what
was excluded; the card links to the model card. The indicator is ``critical`` or
``warning`` by the cut-offs chosen on validation and stored with the model version
(`ProgressionModelVersion.thresholds`), ``info`` below them, and always ``info`` for a
version registered before cut-offs were chosen.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from clinsight.data.physionet2012 import ProgressionSpec
from clinsight.inference.progression import ProgressionAssessment
from clinsight.interop.cds_hooks import SUMMARY_LIMIT, prefetch_bundle
from clinsight.interop.fhir_progression import drivers_text

__all__ = ["ProgressionCdsService", "bundle_from_prefetch", "progression_card"]


@dataclass(frozen=True)
class ProgressionCdsService:
    """A ``patient-view`` deterioration service backed by a progression model."""

    id: str
    title: str
    description: str
    model_name: str
    spec: ProgressionSpec

    @property
    def prefetch(self) -> dict[str, str]:
        """Prefetch templates: the Patient, and the Observations of the spec's variables."""
        codes = sorted({c for v in self.spec.variables.values() for c in v.codes})
        return {
            "patient": "Patient/{{context.patientId}}",
            "observations": "Observation?patient={{context.patientId}}&code="
            + ",".join(codes)
            + "&_sort=date&_count=1000",
        }

    def to_discovery(self) -> dict[str, Any]:
        """This service's entry in the discovery document."""
        return {
            "hook": "patient-view",
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "prefetch": self.prefetch,
        }

    def missing_prefetch(self, request: Mapping[str, Any]) -> list[str]:
        """The prefetch keys the request lacks (or sent as null)."""
        given = request.get("prefetch") or {}
        return [key for key in self.prefetch if given.get(key) is None]


def bundle_from_prefetch(
    service: ProgressionCdsService, request: Mapping[str, Any]
) -> dict[str, Any]:
    """One Bundle of the prefetch's Patient and Observations.

    Raises:
        DataError: a prefetch key is missing or the Patient is not the context patient.
    """
    return prefetch_bundle(service.missing_prefetch(request), request)


def progression_card(
    assessment: ProgressionAssessment, title: str, card_url: str
) -> dict[str, Any]:
    """The card of `assessment` for the service titled `title`, linking to `card_url`."""
    result, model = assessment.result, assessment.result.model
    summary = f"{result.risk:.0%} risk of in-hospital death at 48 h of ICU stay - {title}"
    if len(summary) >= SUMMARY_LIMIT:
        summary = summary[: SUMMARY_LIMIT - 2] + "…"
    cuts = model.thresholds
    if cuts is None:
        alerting = "No alert cut-offs were chosen on validation for this version: informs only."
    else:
        alerting = (
            f"Warning from {float(cuts['warning']):.1%}, critical from "
            f"{float(cuts['critical']):.1%} (chosen on validation)."
        )
    lines = [
        f"Calibrated probability of in-hospital death: **{result.risk:.1%}** ({assessment.level}).",
        "",
        f"Drivers: {drivers_text(assessment)}.",
        "",
        alerting,
    ]
    if result.skipped:
        lines += ["", f"Excluded: {'; '.join(result.skipped)}."]
    return {
        "uuid": str(uuid.uuid4()),
        "summary": summary,
        "indicator": assessment.level,
        "detail": "\n".join(lines),
        "source": {"label": f"Clinsight {model.name} v{model.version}", "url": card_url},
        "links": [{"label": "Model card", "url": card_url, "type": "absolute"}],
    }
