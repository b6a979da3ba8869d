"""eICU as longitudinal records: unit stays placed from the hospital admission, the first
hospital stay only; skipped rows counted."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from clinsight.data.eicu import HICL, LAB, load_eicu
from clinsight.data.longitudinal import RELATIVE_EPOCH, EventKind
from clinsight.errors import DataError, DataNotFoundError

PATIENT = ("patientunitstayid,patienthealthsystemstayid,uniquepid,gender,age,hospitaladmitoffset,"
           "hospitaldischargeoffset,unitdischargeoffset,hospitaldischargestatus,"
           "hospitaldischargeyear,unittype\n")  # fmt: skip


def _folder(tmp_path: Path) -> Path:
    (tmp_path / "patient.csv").write_text(
        PATIENT + "1,10,p-1,Female,> 89,-60,600,120,Expired,2015,MICU\n"
        "2,10,p-1,Female,> 89,-300,360,60,Expired,2015,SICU\n"
        "3,11,p-1,Female,> 89,0,100,50,Alive,2016,MICU\n"
    )
    (tmp_path / "diagnosis.csv").write_text(
        "diagnosisid,patientunitstayid,diagnosisoffset,diagnosisstring,icd9code\n"
        '1,1,30,cardiovascular|shock|septic,"785.52, R65.21"\n'
        "2,3,5,renal|AKI,584.9\n"
    )
    (tmp_path / "medication.csv").write_text(
        "medicationid,patientunitstayid,drugstartoffset,drugname,drughiclseqno,drugordercancelled\n"
        "1,1,10,NOREPINEPHRINE,37410.0,No\n2,1,20,HEPARIN,1.0,Yes\n"
    )
    (tmp_path / "lab.csv").write_text(
        "labid,patientunitstayid,labresultoffset,labname,labresult,labmeasurenamesystem\n"
        "1,2,-10,lactate,4.1,mmol/L\n2,2,0,lactate,,mmol/L\n"
    )
    return tmp_path


def test_stays_are_placed_from_the_hospital_admission(tmp_path: Path) -> None:
    cohort = load_eicu(_folder(tmp_path))
    (record,) = cohort.records
    assert record.relative_times
    assert record.static == {"age": 90.0}
    assert [v.visit_id for v in record.visits] == ["1", "2"]
    unit1 = RELATIVE_EPOCH + timedelta(minutes=60)
    assert record.visits[0].start == unit1
    assert record.visits[1].start == RELATIVE_EPOCH + timedelta(minutes=300)
    (shock,) = record.events_of(EventKind.CONDITION)
    assert (shock.code.code, shock.start) == ("785.52", unit1 + timedelta(minutes=30))
    (drug,) = record.events_of(EventKind.DRUG)
    assert (drug.code.system, drug.code.code, drug.code.display) == (HICL, "37410",
                                                                      "NOREPINEPHRINE")  # fmt: skip
    (lactate,) = record.measurements
    assert (lactate.code.system, lactate.value, lactate.unit) == (LAB, 4.1, "mmol/L")
    (death,) = record.events_of(EventKind.DEATH)
    assert death.start == unit1 + timedelta(minutes=600)
    assert dict(cohort.report.skipped) == {
        "unit stay of a later hospital stay (eICU gives no time between hospital stays)": 1,
        "diagnosis row of a later hospital stay": 1,
        "cancelled medication order": 1,
        "lab row without a numeric result": 1,
    }


def test_the_demo_loads_with_every_row_accounted_for(data_dir: Path) -> None:
    cohort = load_eicu(data_dir / "ehr" / "eicu-demo-subset")
    kept = sum(len(r.events) + len(r.measurements) for r in cohort.records)
    deaths = sum(len(r.events_of(EventKind.DEATH)) for r in cohort.records)
    unit_stays = sum(len(r.visits) for r in cohort.records)
    skipped = sum(cohort.report.skipped.values())
    assert kept - deaths + unit_stays + skipped == cohort.report.rows_read


def test_a_wrong_folder_or_table_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="is not a folder"):
        load_eicu(tmp_path / "missing")
    with pytest.raises(DataNotFoundError, match="has no patient"):
        load_eicu(tmp_path)
    (tmp_path / "patient.csv").write_text("patientunitstayid,gender\n1,Male\n")
    with pytest.raises(DataError, match="lacks column"):
        load_eicu(tmp_path)
