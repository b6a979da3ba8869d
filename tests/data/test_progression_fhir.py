"""A FHIR Bundle of Observations as an ICU stay: codes, units, the stay's start, exclusions
reported, and a posted stay's text."""

from __future__ import annotations

from typing import Any

import pytest

from clinsight.data.physionet2012 import SYSTEM, parse_stay_text
from clinsight.data.progression_fhir import stay_from_bundle
from clinsight.errors import DataError


def _obs(ident: str, coding: dict[str, str], at: str, value: float, unit: str) -> dict[str, Any]:
    return {"resource": {
        "resourceType": "Observation", "id": ident, "status": "final",
        "code": {"coding": [coding]}, "effectiveDateTime": at,
        "valueQuantity": {"value": value, "code": unit},
    }}  # fmt: skip


LOINC_HR = {"system": "http://loinc.org", "code": "8867-4"}
LOINC_TEMP = {"system": "http://loinc.org", "code": "8310-5"}


def test_codes_units_start_and_exclusions() -> None:
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p", "gender": "female",
                      "birthDate": "1950-01-01"}},
        _obs("t1", LOINC_TEMP, "2026-01-01T03:00:00Z", 98.6, "[degF]"),
        _obs("h1", LOINC_HR, "2026-01-01T01:00:00Z", 80, "/min"),
        _obs("g1", {"system": SYSTEM, "code": "GCS"}, "2026-01-01T02:00:00Z", 14, "{score}"),
        _obs("h2", LOINC_HR, "2026-01-01T04:00:00Z", 400, "/min"),
        _obs("h3", LOINC_HR, "2026-01-03T02:00:00Z", 90, "/min"),
    ]}  # fmt: skip
    stay = stay_from_bundle(bundle, "p")
    record = stay.record
    assert [(m.code.code, m.value) for m in record.measurements][:2] == [("HR", 80.0), ("GCS", 14)]
    assert record.measurements[2].value == pytest.approx(37.0)  # 98.6 degF, from 1 h: 2 h in
    assert (record.measurements[0].time - record.measurements[2].time).total_seconds() == -7200
    assert stay.observation_ids == ("h1", "g1", "t1")
    assert record.sex == "female"
    assert record.static["age"] == pytest.approx(76.0, abs=0.1)
    lines = " ".join(stay.report.lines())
    assert "implausible HR" in lines
    assert "after the first 48 h" in lines


def test_a_posted_stay_text_takes_its_record_id() -> None:
    record, report = parse_stay_text(
        "Time,Parameter,Value\n00:00,RecordID,42\n00:00,Age,70\n00:10,HR,-1\n01:00,HR,88\n",
        "ignored",
    )
    assert record.patient_id == "42"
    assert record.static["age"] == 70
    assert "not recorded" in " ".join(report.lines())
    with pytest.raises(DataError, match="no usable time-series observation"):
        parse_stay_text("Time,Parameter,Value\n00:00,Age,70\n", "s")


def test_not_a_bundle_and_no_value_are_refused() -> None:
    with pytest.raises(DataError, match="must be a FHIR Bundle"):
        stay_from_bundle({"resourceType": "Patient"}, "p")
    entry = _obs("h", LOINC_HR, "2026-01-01T01:00:00Z", 1, "/min")
    del entry["resource"]["valueQuantity"]
    with pytest.raises(DataError, match="no numeric valueQuantity"):
        stay_from_bundle({"resourceType": "Bundle", "entry": [entry]}, "p")
