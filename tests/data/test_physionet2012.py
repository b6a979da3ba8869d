"""The PhysioNet 2012 loader on real stays of set A, and each bad input as a clear error or
a reported exclusion."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from clinsight.data.longitudinal import RELATIVE_EPOCH
from clinsight.data.physionet2012 import load_physionet2012, load_spec, read_stay
from clinsight.errors import DataError
from tests.support.progression import set_a, tiny_set


def _copy(data_dir: Path, tmp_path: Path, record: str, extra: str = "", drop: int = 0) -> Path:
    folder, _ = set_a(data_dir)
    lines = (folder / f"{record}.txt").read_text().splitlines()
    lines = lines[: len(lines) - drop] if drop else lines
    path = tmp_path / f"{record}.txt"
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def test_a_real_stay_reads_descriptors_series_and_not_recorded(data_dir: Path) -> None:
    folder, _ = set_a(data_dir)
    record, report = read_stay(folder / "132539.txt")
    assert record.patient_id == "132539"
    assert record.sex == "female"
    assert dict(record.static) == {"age": 54.0, "gender": 0.0, "icu_type": 4.0}
    first = record.measurements[0]
    assert (first.code.code, first.value, first.unit) == ("GCS", 15.0, "score")
    assert first.time == RELATIVE_EPOCH + timedelta(minutes=7)
    assert record.visits[0].kind == "icu:surgical"
    assert report.skipped["descriptor Height -1 (not recorded)"] == 1
    assert report.skipped["descriptor Weight -1 (not recorded)"] == 1


def test_cohort_joins_outcomes(data_dir: Path, tmp_path: Path) -> None:
    folder, outcomes = tiny_set(data_dir, tmp_path, survivors=3, deaths=2)
    cohort = load_physionet2012(folder, outcomes)
    by_id = cohort.by_id()
    assert len(cohort.records) == 5
    assert dict(by_id["132539"].outcomes) == {
        "saps1": 6.0, "sofa": 1.0, "length_of_stay": 5.0, "survival": -1.0,
        "in_hospital_death": 0.0,
    }  # fmt: skip
    assert sum(r.outcomes["in_hospital_death"] for r in cohort.records) == 2


def test_empty_parameter_rows_are_skipped_and_counted(data_dir: Path, tmp_path: Path) -> None:
    path = _copy(data_dir, tmp_path, "132539", "10:45,,1.9\n11:00,,2\n")
    record, report = read_stay(path)
    assert report.skipped["row with an empty parameter name"] == 2
    assert "10:45,,1.9" in report.examples["row with an empty parameter name"]
    assert all(m.code.code for m in record.measurements)


def test_implausible_value_is_an_exclusion_not_a_zero(data_dir: Path, tmp_path: Path) -> None:
    path = _copy(data_dir, tmp_path, "132539", "47:59,HR,0\n")
    record, report = read_stay(path)
    assert report.skipped["implausible HR"] == 1
    assert "HR 0 /min outside 10–299 /min" in report.examples["implausible HR"]
    assert not any(m.code.code == "HR" and m.value == 0 for m in record.measurements)


def test_unknown_variable_is_an_error(data_dir: Path, tmp_path: Path) -> None:
    path = _copy(data_dir, tmp_path, "132539", "47:59,Ferritin,300\n")
    with pytest.raises(DataError, match="unknown variable 'Ferritin'"):
        read_stay(path)


def test_time_going_backwards_is_an_error(data_dir: Path, tmp_path: Path) -> None:
    path = _copy(data_dir, tmp_path, "132539", "47:59,HR,80\n12:00,HR,81\n")
    with pytest.raises(DataError, match="time 12:00 goes backwards"):
        read_stay(path)


def test_stay_without_observations(data_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "set-y" / "999999.txt"
    path.parent.mkdir()
    path.write_text("Time,Parameter,Value\n00:00,RecordID,999999\n00:00,Age,60\n")
    with pytest.raises(DataError, match="no usable time-series observation"):
        read_stay(path)
    folder, _ = set_a(data_dir)
    (path.parent / "132539.txt").write_text((folder / "132539.txt").read_text())
    cohort = load_physionet2012(path.parent)
    assert [r.patient_id for r in cohort.records] == ["132539"]
    assert cohort.report.skipped["stay with no time-series observation (excluded)"] == 1


def test_units_convert_or_are_refused() -> None:
    spec = load_spec()
    assert spec.variable("Temp").to_canonical(98.6, "degF") == pytest.approx(37.0)
    assert spec.variable("Glucose").to_canonical(5.0, "mmol/L") == pytest.approx(90.08)
    assert spec.variable("HR").to_canonical(70.0, None) == 70.0
    with pytest.raises(DataError, match="'furlong/min', a unit the variable spec does not know"):
        spec.variable("HR").to_canonical(70.0, "furlong/min")
    assert spec.by_code()["http://loinc.org|8867-4"] == "HR"
    assert len(spec.variable_names) == 37
