"""FHIR R4 out: a batch prediction's results as a `collection` Bundle of Observations.

Each result row (`inference.batch.RESULT_COLUMNS`, status "ok" or "refused") becomes the
Observation `fhir_images.finding_observation` gives a stored prediction, without a subject
(a batch run reads files, not patients' charts) and with the file's key as identifier, so
the receiving system matches results to its own images. Ids are UUIDs derived from the
key and the model version, so a rerun gives the same ids.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError

from clinsight.errors import DataError
from clinsight.interop.fhir_images import finding_observation

__all__ = ["BATCH_KEY_SYSTEM", "batch_bundle", "batch_bundle_json"]

BATCH_KEY_SYSTEM = "urn:clinsight:batch-input"
_NAMESPACE = uuid.UUID("6f1f3c52-5a1e-4d8e-9a43-7c1b2f0e9d10")
_SEPARATOR = " | "


def batch_bundle(rows: Iterable[Mapping[Any, Any]], *, created: datetime | None = None) -> Bundle:
    """A `collection` Bundle with one Observation per result row (errors have no row).

    Raises:
        DataError: a row lacks a result column or a resource does not validate.
    """
    when = (created or datetime.now(UTC)).isoformat(timespec="seconds")
    entries = []
    for row in rows:
        try:
            key, name, version = str(row["key"]), str(row["model_name"]), int(row["model_version"])
            refused = row["status"] == "refused"
            probability = float(row["label_probability"])
            observation = finding_observation(
                str(uuid.uuid5(_NAMESPACE, f"{name}/{version}/{key}")), name, version,
                str(row["artifact_sha256"]), effective=when, refused=refused,
                finding=str(row["decision"]),
                label_probability=None if math.isnan(probability) else probability,
                reasons=[r for r in str(row["reason"]).split(_SEPARATOR) if r] if refused else
                [w for w in str(row["warnings"]).split(_SEPARATOR) if w],
                identifier={"system": BATCH_KEY_SYSTEM, "value": key},
                notes=[f"Explanation check: {note}" for note in (row.get("lung_note"),) if note],
            )  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"a batch result row is incomplete ({exc}); rerun the batch") from exc
        entries.append(
            {
                "fullUrl": f"urn:uuid:{observation.id}",
                "resource": observation.model_dump(mode="json"),
            }
        )
    try:
        return Bundle.model_validate(
            {"id": str(uuid.uuid4()), "type": "collection", "timestamp": when, "entry": entries}
        )
    except ValidationError as exc:
        raise DataError(f"the Bundle does not validate: {exc}") from exc


def batch_bundle_json(bundle: Bundle) -> dict[str, Any]:
    """The Bundle as plain JSON (no empty elements)."""
    data: dict[str, Any] = json.loads(bundle.model_dump_json(exclude_none=True))
    return data
