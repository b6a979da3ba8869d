"""Plausible ranges: read from specs (validated), implausible values read as missing and
reported by row and feature, constant-zero columns reported, FHIR values left missing."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from clinsight.data.fhir import FhirObservation, PatientRecord
from clinsight.data.fhir_features import FhirFeatureSpec, MissingFeature, extract_features
from clinsight.data.plausibility import PlausibleRange, parse_range
from clinsight.data.tabular import PIMA_RANGES, TaskSpec, load_csv, load_pima, load_uci_heart
from clinsight.errors import DataError

SPEC = {
    "target": "Outcome", "positive": 1,
    "features": {
        "Glucose": {"type": "numeric", "unit": "mg/dL (2-h OGTT)", "plausible": [10, 1500]},
        "BMI": {"type": "numeric", "unit": "kg/m2",
                "plausible": {"min": 7, "max": 200, "source": "clinical limits"}},
        "Age": "numeric",
    },
}  # fmt: skip


def test_ranges_are_read_and_checked_when_the_spec_is_read() -> None:
    spec = TaskSpec.from_mapping(SPEC)
    assert [f.plausible for f in spec.features] == [
        PlausibleRange(10, 1500), PlausibleRange(7, 200, "clinical limits"), None,
    ]  # fmt: skip
    assert parse_range("x", None) is None
    with pytest.raises(DataError) as wrong_order:
        parse_range("Glucose", [1500, 10])
    assert str(wrong_order.value) == (
        "feature 'Glucose': plausible range min 1500 must be below max 10."
    )
    with pytest.raises(DataError) as not_numbers:
        TaskSpec.from_mapping(
            {**SPEC, "features": {"BMI": {"type": "numeric", "plausible": ["low", 3]}}}
        )
    assert str(not_numbers.value) == (
        "feature 'BMI': plausible range ['low', 3] must be two numbers [min, max] or "
        '{"min": ..., "max": ...}.'
    )
    with pytest.raises(DataError) as categorical:
        TaskSpec.from_mapping(
            {**SPEC, "features": {"cp": {"type": "categorical", "plausible": [0, 4]}}}
        )
    assert str(categorical.value) == (
        "feature 'cp': a plausible range needs a numeric feature, not categorical."
    )


def test_implausible_values_are_read_as_missing_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "site.csv"
    path.write_text("Glucose,BMI,Age,Outcome\n2000,33,50,1\n120,300,40,0\n95,0,31,0\n")
    data = load_csv(path, TaskSpec.from_mapping(SPEC))
    assert data.X["Glucose"].fillna(-1).tolist() == [-1.0, 120.0, 95.0]
    assert data.X["BMI"].fillna(-1).tolist() == [33.0, -1.0, -1.0]
    assert data.X["Age"].tolist() == [50.0, 40.0, 31.0]
    assert data.plausibility.counts == {"Glucose": 1, "BMI": 2}
    assert data.notes == (
        "1 implausible Glucose value(s) read as missing (row 1 (line 2): Glucose 2000 mg/dL "
        "is outside the plausible range 10–1500 mg/dL)",
        "2 implausible BMI value(s) read as missing (row 2 (line 3): BMI 300 kg/m2 is outside "
        "the plausible range 7–200 kg/m2; row 3 (line 4): BMI 0 kg/m2 is outside the "
        "plausible range 7–200 kg/m2)",
    )
    unchecked = TaskSpec.from_mapping({**SPEC, "features": {"Glucose": "numeric"}})
    assert load_csv(path, unchecked).X["Glucose"].tolist() == [2000.0, 120.0, 95.0]


def test_a_site_coding_cholesterol_zero_for_not_measured_is_reported(
    tmp_path: Path, data_dir: Path
) -> None:
    source = data_dir / "tabular" / "uci_heart" / "processed.cleveland.data"
    rows = [line.split(",") for line in source.read_text().splitlines()[:123]]
    for row in rows:
        row[4] = "0"
    folder = tmp_path / "tabular" / "uci_heart"
    folder.mkdir(parents=True)
    (folder / "processed.switzerland.data").write_text("\n".join(",".join(r) for r in rows))
    data = load_uci_heart("switzerland", tmp_path)
    assert data.X["chol"].isna().all()
    assert data.plausibility.constant_zero == ("chol",)
    assert data.plausibility.counts == {"chol": 123}
    assert data.notes[0] == "chol is 0 in every row (123): read as 'not measured'"
    assert data.notes[1].startswith(
        "123 implausible chol value(s) read as missing (row 1 (line 1): chol 0 mg/dL is "
        "outside the plausible range 20–1500 mg/dL; "
    )
    assert data.notes[1].endswith("; and 118 more)")


def test_a_constant_zero_column_whose_zero_is_plausible_is_kept_and_flagged(
    tmp_path: Path, data_dir: Path
) -> None:
    source = data_dir / "tabular" / "uci_heart" / "processed.cleveland.data"
    rows = [line.split(",") for line in source.read_text().splitlines()[:40]]
    for row in rows:
        row[9] = "0"  # oldpeak: 0 mm is a plausible ST depression
    folder = tmp_path / "tabular" / "uci_heart"
    folder.mkdir(parents=True)
    (folder / "processed.flat.data").write_text("\n".join(",".join(r) for r in rows))
    data = load_uci_heart("flat", tmp_path)
    assert data.X["oldpeak"].tolist() == [0.0] * 40
    assert data.plausibility.zero_kept == ("oldpeak",)
    assert data.notes[0] == (
        "oldpeak is 0 in every row (40): kept as 0, a plausible value; check whether the site "
        "codes 'not measured' as 0"
    )


def test_the_built_in_files_have_no_implausible_value(data_dir: Path) -> None:
    for data in (load_pima(data_dir), load_uci_heart("cleveland", data_dir)):
        assert data.plausibility.implausible == ()
        assert data.plausibility.constant_zero == ()
    assert load_pima(data_dir).spec.features[1].plausible == PIMA_RANGES["Glucose"]


def test_a_fhir_value_outside_the_rule_range_is_left_missing() -> None:
    spec = FhirFeatureSpec.builtin("pima-synthea")
    when = datetime(2019, 7, 1, tzinfo=UTC)
    record = PatientRecord(
        patient_id="p1", birth_date=date(1970, 1, 1), sex="female", deceased=None,
        conditions=(), medications=(), source_sha256="0" * 64,
        observations=(FhirObservation("Observation/g1", "http://loinc.org", "2339-0",
                                      "Glucose", 2000.0, "mg/dL", when),),
    )  # fmt: skip
    found = extract_features(record, spec, as_of=datetime(2020, 1, 1, tzinfo=UTC))
    message = "Observation/g1: Glucose 2000 mg/dL is outside the plausible range 10–1500 mg/dL"
    assert found.values["Glucose"] is None
    assert found.missing[0] == MissingFeature("Glucose", message)
    assert [item.message for item in found.implausible] == [message]
    with pytest.raises(DataError, match="feature 'Age': plausible range min 5 must be below"):
        FhirFeatureSpec.from_mapping(
            {"features": {"Age": {"source": "patient", "field": "age", "plausible": [5, 1]}}}
        )
