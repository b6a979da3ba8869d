"""FHIR R4 out: an image model's prediction as an `Observation`, validated with fhir.resources.

A finding is the Observation's ``valueCodeableConcept`` (its text the label, or
"indeterminate" inside a binary model's band) with the calibrated probability in a note.
An image refused as outside the model's intended use gets no finding: the Observation
has no value, a ``dataAbsentReason`` ("not-applicable") and the reasons as notes, so no
receiving system can file it as a result. ``method`` names the model, version and sha256.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from fhir.resources.R4B.observation import Observation
from pydantic import ValidationError

from clinsight import __version__
from clinsight.errors import DataError
from clinsight.interop.fhir_out import MODEL_SYSTEM
from clinsight.store.studies import PredictionRecord

__all__ = ["finding_observation", "image_observation", "image_observation_json"]

_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"


def image_observation(
    record: PredictionRecord, subject: str, notes: Sequence[str] = ()
) -> Observation:
    """The `Observation` of a stored image prediction about `subject` (``Patient/<id>``),
    with `notes` (e.g. where its explanation lies) after the finding's own.

    Raises:
        DataError: the resource does not validate (e.g. a malformed subject reference).
    """
    return finding_observation(
        record.id, record.model_name, record.model_version, record.artifact_sha256,
        effective=record.created_at.isoformat(timespec="seconds"), refused=record.refused,
        finding=record.predicted_label, label_probability=record.label_probability,
        reasons=record.intended_use_reasons, subject=subject, notes=notes,
    )  # fmt: skip


def finding_observation(
    observation_id: str, name: str, version: int | str, artifact_sha256: str, *, effective: str,
    refused: bool, finding: str, label_probability: float | None, reasons: Sequence[str],
    subject: str | None = None, identifier: Mapping[str, str] | None = None,
    notes: Sequence[str] = (),
) -> Observation:  # fmt: skip
    """An image model's finding as an `Observation` (the shape `image_observation` gives a
    stored prediction; a batch run's result has no `subject` but an `identifier`).

    Raises:
        DataError: the resource does not validate (e.g. a malformed subject reference).
    """
    annotations = [{"text": reason} for reason in reasons]
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": observation_id,
        "status": "preliminary",
        "category": [{"coding": [{"system": _CATEGORY, "code": "imaging",
                                  "display": "Imaging"}]}],
        "code": {"text": f"Clinsight image model {name} finding"},
        "effectiveDateTime": effective,
        "method": {
            "coding": [{"system": MODEL_SYSTEM, "code": f"{name}/{version}",
                        "display": f"Clinsight {name} v{version}"}],
            "text": f"{name} v{version} (artifact sha256 {artifact_sha256}, "
                    f"Clinsight {__version__}); decision support, to be confirmed by a clinician",
        },
    }  # fmt: skip
    if subject is not None:
        resource["subject"] = {"reference": subject}
    if identifier is not None:
        resource["identifier"] = [dict(identifier)]
    if refused:
        resource["dataAbsentReason"] = {
            "coding": [{"system": _ABSENT, "code": "not-applicable", "display": "Not Applicable"}],
            "text": "Outside the model's intended use: no finding is given.",
        }
    else:
        resource["valueCodeableConcept"] = {"text": finding}
        if label_probability is not None:
            share = f"{label_probability:.1%}"
            annotations.insert(0, {"text": f"Calibrated probability of {finding}: {share}."})
    annotations += [{"text": text} for text in notes]
    if annotations:
        resource["note"] = annotations
    try:
        return Observation.model_validate(resource)
    except ValidationError as exc:
        raise DataError(f"the Observation does not validate: {exc}") from exc


def image_observation_json(observation: Observation) -> dict[str, Any]:
    """The resource as plain JSON (no empty elements)."""
    data: dict[str, Any] = json.loads(observation.model_dump_json(exclude_none=True))
    return data
