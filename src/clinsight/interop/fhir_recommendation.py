"""FHIR R4 out: treatment suggestions as `MedicationRequest` proposals.

Each suggestion is a ``MedicationRequest`` with ``status`` ``draft`` and ``intent``
``proposal`` (a suggestion a clinician may act on, never an order), the ingredient as
``medicationCodeableConcept`` (RxNorm), ``reasonReference`` to the patient's Conditions
it was drawn for, the explanation, support, cold-start note and free-text allergies in
``note``, and the model that made it in ``identifier``. Validated with fhir.resources.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B.medicationrequest import MedicationRequest
from pydantic import ValidationError

from clinsight.errors import DataError
from clinsight.interop.fhir_out import MODEL_SYSTEM
from clinsight.recommend.suggest import SuggestionList

__all__ = ["RXNORM_SYSTEM", "medication_proposals"]

RXNORM_SYSTEM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def medication_proposals(
    suggestions: SuggestionList,
    *,
    subject: str,
    conditions: Mapping[str, str],
    model: str,
    version: int,
    authored: datetime | None = None,
) -> list[dict[str, Any]]:
    """One draft proposal per suggestion; `conditions` maps a condition's display name to
    its FHIR reference (``Condition/<id>``), for ``reasonReference``.

    Raises:
        DataError: a resource does not validate.
    """
    when = (authored or datetime.now(UTC)).isoformat(timespec="seconds")
    found = []
    for suggestion in suggestions.suggestions:
        system, _, code = suggestion.treatment.partition("|")
        reasons: Sequence[dict[str, Any]] = [
            {"reference": conditions[c], "display": c}
            for c in suggestion.conditions
            if c in conditions
        ]
        notes = [suggestion.explanation, *suggestion.details,
                 f"Support: {suggestion.support} patients. Suggested by Clinsight "
                 f"{model} v{version}; a proposal for review, not an order."]  # fmt: skip
        if suggestions.cold_start:
            notes.append(suggestions.notes[0] if suggestions.notes else "cold start")
        notes.extend(f"Allergy recorded as free text, not checked by code: {a}"
                     for a in suggestions.unchecked_allergies)  # fmt: skip
        resource: dict[str, Any] = {
            "resourceType": "MedicationRequest",
            "id": str(uuid.uuid4()),
            "identifier": [{"system": MODEL_SYSTEM, "value": f"{model}/{version}"}],
            "status": "draft",
            "intent": "proposal",
            "medicationCodeableConcept": {
                "coding": [{"system": RXNORM_SYSTEM if system == "RxNorm" else system,
                            "code": code, "display": suggestion.display}],
                "text": suggestion.display,
            },
            "subject": {"reference": subject},
            "authoredOn": when,
            "note": [{"text": text} for text in notes],
        }  # fmt: skip
        if reasons:
            resource["reasonReference"] = list(reasons)
        try:
            MedicationRequest.model_validate(resource)
        except ValidationError as exc:
            raise DataError(f"the MedicationRequest does not validate: {exc}") from exc
        found.append(resource)
    return found
