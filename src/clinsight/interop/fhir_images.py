"""FHIR R4 out: an image model's prediction as an `Observation`, validated with fhir.resources.

A finding is the Observation's ``valueCodeableConcept`` (its text the label, or
"indeterminate" inside a binary model's band) with the calibrated probability in a note.
An image refused as outside the model's intended use gets no finding: the Observation
has no value, a ``dataAbsentReason`` ("not-applicable") and the reasons as notes, so no
receiving system can file it as a result. ``method`` names the model, version and sha256.
"""

from __future__ import annotations

import json
from typing import Any

from fhir.resources.R4B.observation import Observation
from pydantic import ValidationError

from clinsight import __version__
from clinsight.errors import DataError
from clinsight.interop.fhir_out import MODEL_SYSTEM
from clinsight.store.studies import PredictionRecord

__all__ = ["image_observation", "image_observation_json"]

_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"


def image_observation(record: PredictionRecord, subject: str) -> Observation:
    """The `Observation` of a stored image prediction about `subject` (``Patient/<id>``).

    Raises:
        DataError: the resource does not validate (e.g. a malformed subject reference).
    """
    name, version = record.model_name, record.model_version
    notes = [{"text": reason} for reason in record.intended_use_reasons]
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": record.id,
        "status": "preliminary",
        "category": [{"coding": [{"system": _CATEGORY, "code": "imaging",
                                  "display": "Imaging"}]}],
        "code": {"text": f"Clinsight image model {name} finding"},
        "subject": {"reference": subject},
        "effectiveDateTime": record.created_at.isoformat(timespec="seconds"),
        "method": {
            "coding": [{"system": MODEL_SYSTEM, "code": f"{name}/{version}",
                        "display": f"Clinsight {name} v{version}"}],
            "text": f"{name} v{version} (artifact sha256 {record.artifact_sha256}, "
                    f"Clinsight {__version__}); decision support, to be confirmed by a clinician",
        },
    }  # fmt: skip
    if record.refused:
        resource["dataAbsentReason"] = {
            "coding": [{"system": _ABSENT, "code": "not-applicable", "display": "Not Applicable"}],
            "text": "Outside the model's intended use: no finding is given.",
        }
    else:
        resource["valueCodeableConcept"] = {"text": record.predicted_label}
        if record.label_probability is not None:
            share = f"{record.label_probability:.1%}"
            notes.insert(
                0, {"text": f"Calibrated probability of {record.predicted_label}: {share}."}
            )
    if notes:
        resource["note"] = notes
    try:
        return Observation.model_validate(resource)
    except ValidationError as exc:
        raise DataError(f"the Observation does not validate: {exc}") from exc


def image_observation_json(observation: Observation) -> dict[str, Any]:
    """The resource as plain JSON (no empty elements)."""
    data: dict[str, Any] = json.loads(observation.model_dump_json(exclude_none=True))
    return data
