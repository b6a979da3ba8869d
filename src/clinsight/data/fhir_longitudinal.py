"""FHIR patient Bundles (e.g. Synthea's) as longitudinal records.

Encounters become visits; conditions, medication requests, procedures and allergies become
coded events linked to their encounter; numeric observations become measurements (coded
observations are kept only as their text in the FHIR record, not here). Times are UTC,
without the zone, like every other source. Items without a time or a code are skipped and
counted; an allergy without a coded substance is kept with its text as the code.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from clinsight.data import fhir
from clinsight.data.longitudinal import (
    Code,
    Cohort,
    Event,
    EventKind,
    LoadReport,
    Measurement,
    PatientRecord,
    Visit,
)
from clinsight.errors import DataNotFoundError

__all__ = ["ALLERGY_TEXT", "load_fhir_cohort", "longitudinal_record"]

ALLERGY_TEXT = "urn:clinsight:allergy-text"
_KINDS = (("conditions", EventKind.CONDITION), ("medications", EventKind.DRUG),
          ("procedures", EventKind.PROCEDURE), ("allergies", EventKind.ALLERGY))  # fmt: skip


def _naive(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def _visit_id(reference: str | None) -> str | None:
    if not reference:
        return None
    return reference.removeprefix("urn:uuid:").removeprefix("Encounter/")


def _events(items: Iterable[fhir.CodedItem], kind: EventKind, report: LoadReport) -> list[Event]:
    found = []
    for item in items:
        report.rows_read += 1
        start = _naive(item.start)
        if start is None:
            report.skip(f"{kind.value} without a time", item.reference)
            continue
        if item.code:
            code = Code(item.system or "urn:clinsight:unknown-system", item.code, item.display)
        elif kind is EventKind.ALLERGY and item.display:
            code = Code(ALLERGY_TEXT, item.display.lower(), item.display)
        else:
            report.skip(f"{kind.value} without a code", item.reference)
            continue
        found.append(Event(kind, code, start, _naive(item.end), _visit_id(item.encounter)))
    return found


def longitudinal_record(record: fhir.PatientRecord, report: LoadReport) -> PatientRecord:
    """The longitudinal form of a parsed FHIR patient record (skips counted in `report`)."""
    visits = []
    for encounter in record.encounters:
        report.rows_read += 1
        start = _naive(encounter.start)
        if start is None:
            report.skip("encounter without a start", encounter.reference)
            continue
        end = _naive(encounter.end)
        kind = (encounter.status or "unknown").lower()
        visits.append(Visit(_visit_id(encounter.reference) or "", start,
                            end if end and end >= start else None, kind))  # fmt: skip
    events = [e for name, kind in _KINDS for e in _events(getattr(record, name), kind, report)]
    died = _naive(record.deceased)
    if died is not None:
        events.append(Event(EventKind.DEATH, Code("urn:clinsight:event", "death"), died))
    measurements = []
    for observation in record.observations:
        report.rows_read += 1
        when = _naive(observation.effective)
        if not isinstance(observation.value, float) or when is None:
            report.skip("observation without a numeric value or a time", observation.reference)
            continue
        code = Code(observation.system or "urn:clinsight:unknown-system", observation.code,
                    observation.display)  # fmt: skip
        measurements.append(Measurement(code, when, observation.value, observation.unit))
    sex = record.sex if record.sex in ("male", "female") else None
    return PatientRecord(record.patient_id, record.birth_date, sex, tuple(visits),
                         tuple(events), tuple(measurements))  # fmt: skip


def _has_patient(content: bytes) -> bool:
    try:
        bundle = json.loads(content)
    except ValueError:
        return True  # not JSON: let the parser say what is wrong with it
    entries = bundle.get("entry") or [] if isinstance(bundle, dict) else []
    return any((e.get("resource") or {}).get("resourceType") == "Patient" for e in entries)


def load_fhir_cohort(folder: Path) -> Cohort:
    """Every patient Bundle (``*.json``) of `folder` as a longitudinal record; Bundles
    without a Patient (Synthea's hospital and practitioner files) are skipped and counted.

    Raises:
        DataNotFoundError: the folder does not exist or holds no JSON file.
        DataError: a file is not a valid patient Bundle (the message names it).
    """
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not files:
        raise DataNotFoundError(f"{folder} holds no FHIR patient Bundles (*.json).")
    report = LoadReport(source=f"FHIR Bundles ({folder.name})")
    records = []
    for path in files:
        content = path.read_bytes()
        if not _has_patient(content):
            report.skip("Bundle without a Patient resource", path.name)
            continue
        records.append(longitudinal_record(fhir.parse_bundle(content, source=str(path)), report))
    report.patients = len(records)
    return Cohort(tuple(records), report)
