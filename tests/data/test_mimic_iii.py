"""MIMIC-III as longitudinal records: the demo's admissions, codes and drugs; bad rows
counted, never read as zero."""

from __future__ import annotations

from pathlib import Path

import pytest

from clinsight.data.longitudinal import EventKind
from clinsight.data.mimic_iii import ICD9, NDC, load_mimic_iii
from clinsight.errors import DataNotFoundError


def test_the_demo_gives_every_patient_admission_and_coded_row(data_dir: Path) -> None:
    cohort = load_mimic_iii(data_dir / "ehr" / "mimic-iii-demo-1.4")
    assert len(cohort.records) == 100
    assert sum(len(r.visits) for r in cohort.records) == 129
    record = cohort.by_id()["10006"]
    sepsis = next(e for e in record.events_of(EventKind.CONDITION) if e.code.code == "99591")
    assert (sepsis.code.system, sepsis.code.display) == (ICD9, "Sepsis")
    # Diagnoses are coded at discharge: dated at the admission's end, never before it.
    assert sepsis.start == record.visits[0].end
    drugs = record.events_of(EventKind.DRUG)
    assert any(d.code.system == NDC and d.code.display == "Glipizide" for d in drugs)
    masked = [r for r in cohort.records if r.birth_date is None]
    assert masked
    assert all(r.static["age"] == 90 for r in masked)
    assert cohort.report.skipped[
        "birth date shifted by MIMIC (age over 89): age recorded as 90"] == len(masked)  # fmt: skip


def _write(folder: Path, name: str, text: str) -> None:
    (folder / f"{name}.csv").write_text(text)


def test_rows_without_a_code_or_an_admission_are_counted(tmp_path: Path) -> None:
    _write(tmp_path, "PATIENTS", "subject_id,gender,dob,dod\n1,F,2100-01-01 00:00:00,\n")
    _write(tmp_path, "ADMISSIONS", "subject_id,hadm_id,admittime,dischtime,admission_type\n"
           "1,10,2150-01-01 10:00:00,2150-01-05 10:00:00,EMERGENCY\n"
           "1,11,2150-02-01 10:00:00,,ELECTIVE\n")  # fmt: skip
    _write(tmp_path, "DIAGNOSES_ICD", "subject_id,hadm_id,seq_num,icd9_code\n"
           "1,10,1,4280\n1,10,2,\n1,99,1,25000\n")  # fmt: skip
    _write(tmp_path, "PRESCRIPTIONS", "row_id,subject_id,hadm_id,startdate,enddate,drug,ndc\n"
           "1,1,10,2150-01-02 00:00:00,2150-01-03 00:00:00,Furosemide,0\n"
           "2,1,10,,,Aspirin,123\n")  # fmt: skip
    cohort = load_mimic_iii(tmp_path)
    record = cohort.records[0]
    assert [v.visit_id for v in record.visits] == ["10"]
    assert [e.code.code for e in record.events_of(EventKind.CONDITION)] == ["4280"]
    assert [e.code.code for e in record.events_of(EventKind.DRUG)] == ["furosemide"]
    assert record.sex == "female"
    assert dict(cohort.report.skipped) == {
        "admission without a valid admit and discharge time": 1,
        "condition row without an ICD-9 code": 1,
        "condition row of an unknown admission": 1,
        "prescription without a known admission or a start date": 1,
    }


def test_a_folder_without_the_tables_says_where_to_point(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"has no PATIENTS\.csv"):
        load_mimic_iii(tmp_path)
    with pytest.raises(DataNotFoundError, match="is not a folder"):
        load_mimic_iii(tmp_path / "missing")
