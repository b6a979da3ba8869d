"""FHIR patient Bundles as longitudinal records: encounters as visits, coded events linked
to them, numeric observations as measurements; what is skipped is counted."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from clinsight.data.fhir_longitudinal import ALLERGY_TEXT, load_fhir_cohort
from clinsight.data.longitudinal import EventKind
from clinsight.errors import DataError, DataNotFoundError


def _bundle(*resources: Mapping[str, Any]) -> str:
    entries = [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources]
    return json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries})


PATIENT = {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1950-02-01"}
VISIT = {"resourceType": "Encounter", "id": "e1", "status": "finished",
         "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
         "period": {"start": "2020-01-01T10:00:00+01:00", "end": "2020-01-03T10:00:00+01:00"},
         "subject": {"reference": "urn:uuid:p1"}}  # fmt: skip
CONDITION = {"resourceType": "Condition", "id": "c1", "subject": {"reference": "urn:uuid:p1"},
             "encounter": {"reference": "urn:uuid:e1"}, "onsetDateTime": "2020-01-01T12:00:00Z",
             "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006",
                                  "display": "Diabetes"}]}}  # fmt: skip
ALLERGY = {"resourceType": "AllergyIntolerance", "id": "a1",
           "patient": {"reference": "urn:uuid:p1"}, "recordedDate": "2019-05-01",
           "code": {"text": "Penicillin"}}  # fmt: skip
GLUCOSE = {"resourceType": "Observation", "id": "o1", "status": "final",
           "subject": {"reference": "urn:uuid:p1"}, "effectiveDateTime": "2020-01-02T08:00:00Z",
           "code": {"coding": [{"system": "http://loinc.org", "code": "2339-0"}]},
           "valueQuantity": {"value": 180, "unit": "mg/dL"}}  # fmt: skip
NO_TIME = {"resourceType": "Observation", "id": "o2", "status": "final",
           "subject": {"reference": "urn:uuid:p1"},
           "code": {"coding": [{"system": "http://loinc.org", "code": "2339-0"}]},
           "valueQuantity": {"value": 90, "unit": "mg/dL"}}  # fmt: skip


def test_a_bundle_becomes_visits_events_and_measurements(tmp_path: Path) -> None:
    (tmp_path / "p1.json").write_text(_bundle(PATIENT, VISIT, CONDITION, ALLERGY, GLUCOSE, NO_TIME))
    (tmp_path / "hospitalInformation1.json").write_text(_bundle(
        {"resourceType": "Organization", "id": "org1", "name": "General"}))  # fmt: skip
    cohort = load_fhir_cohort(tmp_path)
    (record,) = cohort.records
    (visit,) = record.visits
    assert (visit.visit_id, visit.kind, visit.start.hour, visit.start.tzinfo) == ("e1", "imp", 9,
                                                                                  None)  # fmt: skip
    (condition,) = record.events_of(EventKind.CONDITION)
    assert (condition.code.code, condition.visit_id) == ("44054006", "e1")
    (allergy,) = record.events_of(EventKind.ALLERGY)
    assert (allergy.code.system, allergy.code.display) == (ALLERGY_TEXT, "Penicillin")
    (glucose,) = record.measurements
    assert (glucose.code.code, glucose.value, glucose.unit) == ("2339-0", 180.0, "mg/dL")
    assert dict(cohort.report.skipped) == {
        "Bundle without a Patient resource": 1,
        "observation without a numeric value or a time": 1,
    }


def test_the_synthea_bundles_load(data_dir: Path) -> None:
    cohort = load_fhir_cohort(data_dir / "fhir" / "synthea-r4")
    assert len(cohort.records) > 30
    linked = [e for r in cohort.records for e in r.events if e.visit_id is not None]
    visits = {v.visit_id for r in cohort.records for v in r.visits}
    assert linked
    assert all(e.visit_id in visits for e in linked)


def test_wrong_folders_and_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="holds no FHIR patient Bundles"):
        load_fhir_cohort(tmp_path)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match=r"bad\.json is not a valid FHIR R4 Bundle"):
        load_fhir_cohort(tmp_path)
