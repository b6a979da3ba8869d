"""FHIR R4 in: Synthea bundles parsed with fhir.resources into typed patient records."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from clinsight.data.fhir import parse_bundle, read_bundle
from clinsight.errors import DataError, DataNotFoundError
from tests.support.risk_models import SYNTHEA, synthea_file


def test_a_synthea_bundle_becomes_a_typed_record() -> None:
    record = read_bundle(synthea_file(0))
    assert record.patient_id == "018f428e-34f6-4707-8009-5ad742f901e7"
    assert record.reference == "Patient/018f428e-34f6-4707-8009-5ad742f901e7"
    assert (record.birth_date, record.sex, record.deceased) == (date(1956, 8, 3), "male", None)
    assert (len(record.conditions), len(record.observations), len(record.medications)) == (
        3,
        104,
        2,
    )
    condition = record.conditions[0]
    assert (condition.system, condition.code, condition.status) == (
        "http://snomed.info/sct", "162864005", "active",
    )  # fmt: skip
    assert condition.start == datetime(1991, 6, 7, 23, 37, 54, tzinfo=UTC)
    medication = record.medications[0]
    assert (medication.code, medication.display, medication.status) == (
        "310965", "Ibuprofen 200 MG Oral Tablet", "stopped",
    )  # fmt: skip
    assert len(record.source_sha256) == 64


def test_panels_become_one_observation_per_component_citing_the_panel() -> None:
    record = read_bundle(synthea_file(0))
    panel = "Observation/f13d3b8d-0097-4b35-8d6e-31c73ac2601c"
    diastolic, systolic = (
        o for o in record.observations if o.reference == panel and o.code in ("8462-4", "8480-6")
    )
    assert (diastolic.code, diastolic.unit) == ("8462-4", "mm[Hg]")
    assert diastolic.value == pytest.approx(75.4364412796852)
    assert systolic.value == pytest.approx(129.73979437732424)
    assert diastolic.effective == datetime(2011, 10, 14, 23, 37, 54, tzinfo=UTC)


def test_observations_of_matches_code_or_system_and_code_oldest_first() -> None:
    record = read_bundle(synthea_file(0))
    bmi = record.observations_of(["http://loinc.org|39156-5"])
    assert bmi == record.observations_of(["39156-5"])
    assert [o.effective for o in bmi] == sorted(o.effective for o in bmi if o.effective)
    assert bmi[-1].value == pytest.approx(29.99600277008462)
    assert bmi[-1].unit == "kg/m2"


def test_coded_observation_values_are_kept_as_text() -> None:
    record = read_bundle(synthea_file(0))
    smoking = record.observations_of(["72166-2"])
    assert {o.value for o in smoking} == {"Never smoker"}


def test_bundles_without_exactly_one_patient_are_refused() -> None:
    practitioners = next(SYNTHEA.glob("practitionerInformation*.json"))
    with pytest.raises(DataError, match="holds 0 Patient resources"):
        read_bundle(practitioners)


def test_invalid_content_names_the_source(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="upload is not a valid FHIR R4 Bundle"):
        parse_bundle(b'{"resourceType": "Bundle", "type": 42}', source="upload")
    with pytest.raises(DataError, match=r"x\.json is not a valid FHIR R4 Bundle"):
        parse_bundle("not json", source="x.json")
    with pytest.raises(DataNotFoundError, match="does not exist"):
        read_bundle(tmp_path / "missing.json")


def test_age_stops_at_death() -> None:
    bundle = {
        "resourceType": "Bundle", "type": "collection",
        "entry": [{"resource": {"resourceType": "Patient", "id": "p1", "gender": "female",
                                "birthDate": "1950-01-01",
                                "deceasedDateTime": "2000-01-01T00:00:00Z"}}],
    }  # fmt: skip
    record = parse_bundle(json.dumps(bundle))
    assert record.age_at(datetime(2020, 1, 1, tzinfo=UTC)) == pytest.approx(18262 / 365.25)
    assert record.age_at(datetime(1990, 1, 1, tzinfo=UTC)) == pytest.approx(14610 / 365.25)
