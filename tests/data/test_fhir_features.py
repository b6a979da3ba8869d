"""Declarative FHIR feature specs: latest, mean, count, exists, days since, units, missing."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest

from clinsight.data.fhir import CodedItem, FhirObservation, PatientRecord, read_bundle
from clinsight.data.fhir_features import FhirFeatureSpec, MissingFeature, extract_features
from clinsight.errors import DataError, DataNotFoundError
from tests.support.risk_models import synthea_file

AS_OF = datetime(2020, 1, 1, tzinfo=UTC)


def _obs(ref: str, code: str, value: float | str, unit: str | None, day: date) -> FhirObservation:
    when = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return FhirObservation(f"Observation/{ref}", "http://loinc.org", code, code, value, unit, when)


RECORD = PatientRecord(
    patient_id="p1", birth_date=date(1970, 1, 1), sex="female", deceased=None,
    conditions=(
        CodedItem("Condition/c1", "http://snomed.info/sct", "44054006", "Diabetes",
                  datetime(2015, 1, 1, tzinfo=UTC), None, "active"),
    ),
    observations=(
        _obs("g1", "2339-0", 5.0, "mmol/L", date(2018, 1, 1)),
        _obs("g2", "2339-0", 110.0, "mg/dL", date(2019, 7, 1)),
        _obs("g3", "2339-0", 999.0, "mg/dL", date(2021, 1, 1)),  # after AS_OF: ignored
        _obs("b1", "39156-5", 31.0, "kg/m2", date(2012, 1, 1)),
        _obs("h1", "4548-4", 6.1, "%", date(2019, 12, 2)),
        _obs("s1", "72166-2", "Never smoker", None, date(2019, 1, 1)),
    ),
    medications=(),
    source_sha256="0" * 64,
)  # fmt: skip

SPEC = FhirFeatureSpec.from_mapping({
    "name": "test",
    "features": {
        "glucose": {"source": "observation", "codes": ["http://loinc.org|2339-0"],
                    "unit": "mg/dL", "convert": {"mmol/L": 18.0}},
        "glucose_mean": {"source": "observation", "codes": ["2339-0"], "aggregate": "mean",
                         "unit": "mg/dL", "convert": {"mmol/L": 18.0}},
        "glucose_count": {"source": "observation", "codes": ["2339-0"], "aggregate": "count"},
        "bmi_recent": {"source": "observation", "codes": ["39156-5"], "max_age_days": 365},
        "hba1c_mmol": {"source": "observation", "codes": ["4548-4"], "unit": "mmol/mol"},
        "hba1c_days": {"source": "observation", "codes": ["4548-4"], "aggregate": "days_since"},
        "smoker": {"source": "observation", "codes": ["72166-2"],
                   "map": {"Never smoker": 0, "Current every day smoker": 1}},
        "diabetes": {"source": "condition", "codes": ["http://snomed.info/sct|44054006"],
                     "aggregate": "exists"},
        "statin": {"source": "medication", "codes": ["316672"], "aggregate": "exists"},
        "ldl": {"source": "observation", "codes": ["18262-6"]},
        "age": {"source": "patient", "field": "age"},
        "sex": {"source": "patient", "field": "sex", "map": {"female": 0, "male": 1}},
    },
})  # fmt: skip
SPEC_NAMES = [r.feature for r in SPEC.rules]


def test_every_aggregate_and_unit_conversion_gives_its_exact_value() -> None:
    found = extract_features(RECORD, SPEC, as_of=AS_OF)
    assert found.values == {
        "glucose": 110.0, "glucose_mean": pytest.approx((90.0 + 110.0) / 2),
        "glucose_count": 2.0, "bmi_recent": None, "hba1c_mmol": None, "hba1c_days": 30.0,
        "smoker": 0.0, "diabetes": 1.0, "statin": 0.0, "ldl": None,
        "age": pytest.approx(18262 / 365.25), "sex": 0.0,
    }  # fmt: skip
    assert found.basis["glucose"] == ("Observation/g2",)
    assert found.basis["glucose_mean"] == ("Observation/g1", "Observation/g2")
    assert found.basis["diabetes"] == ("Condition/c1",)
    assert "statin" not in found.basis


def test_missing_features_are_reported_with_their_reason_never_filled() -> None:
    found = extract_features(RECORD, SPEC, [*SPEC_NAMES, "insulin"], as_of=AS_OF)
    assert found.missing == (
        MissingFeature("bmi_recent", "no observation with code 39156-5 in the last 365 days"),
        MissingFeature("hba1c_mmol",
                       "Observation/h1 is in '%', which is not convertible to 'mmol/mol'"),
        MissingFeature("ldl", "no observation with code 18262-6"),
        MissingFeature("insulin", "feature spec 'test' has no rule for it"),
    )  # fmt: skip
    frame = found.frame()
    assert list(frame.columns) == [*SPEC_NAMES, "insulin"]
    ldl = frame.loc[0, "ldl"]
    assert isinstance(ldl, float)
    assert np.isnan(ldl)
    assert frame.loc[0, "glucose"] == 110.0


def test_references_list_every_cited_resource_once() -> None:
    found = extract_features(RECORD, SPEC, as_of=AS_OF)
    assert found.references == (
        "Condition/c1", "Observation/g1", "Observation/g2", "Observation/h1", "Observation/s1",
    )  # fmt: skip


def test_the_builtin_pima_spec_reads_a_synthea_patient() -> None:
    spec = FhirFeatureSpec.builtin("pima-synthea")
    record = read_bundle(synthea_file(0))
    found = extract_features(record, spec, as_of=datetime(2019, 6, 1, tzinfo=UTC))
    assert found.values["BloodPressure"] == pytest.approx(82.57844024615862)
    assert found.values["BMI"] == pytest.approx(29.99600277008462)
    assert found.values["Age"] == pytest.approx(22947 / 365.25)
    assert found.missing == (
        MissingFeature(
            "Glucose",
            "no observation with code http://loinc.org|2339-0 or http://loinc.org|2345-7 "
            "in the last 730 days",
        ),
    )
    assert len(spec.notes) == 4


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"source": "lab"}, "'source' must be one of"),
        ({"source": "observation"}, "list the 'codes'"),
        ({"source": "observation", "codes": ["1"], "aggregate": "max"}, "aggregate must be"),
        ({"source": "patient", "field": "weight"}, "needs field age or sex"),
    ],
)
def test_invalid_rules_are_refused_by_name(rule: dict[str, object], message: str) -> None:
    with pytest.raises(DataError, match=message):
        FhirFeatureSpec.from_mapping({"features": {"x": rule}})


def test_spec_files_and_builtin_names_are_checked(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="does not exist"):
        FhirFeatureSpec.from_file(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("features: [1, 2")
    with pytest.raises(DataError, match="cannot be parsed"):
        FhirFeatureSpec.from_file(bad)
    good = tmp_path / "good.yaml"
    good.write_text("name: y\nfeatures:\n  age: {source: patient, field: age}\n")
    assert FhirFeatureSpec.from_file(good).rules[0].patient_field == "age"
    with pytest.raises(DataError, match="no built-in feature spec 'nope'"):
        FhirFeatureSpec.builtin("nope")
