"""The eICU Collaborative Research Database (or its demo) as longitudinal records.

Reads ``patient`` (unit stays), ``diagnosis``, ``medication`` and ``lab``. eICU gives times
only as minutes relative to each unit admission, and gives no time between a patient's
hospital stays, so a record holds the patient's first hospital stay (by discharge year,
then stay id): its unit stays are placed by their offset from the hospital admission,
which is anchored at `RELATIVE_EPOCH` (``relative_times`` is set; no calendar date is
invented). Later hospital stays of the same patient are skipped and counted. Ages "> 89"
are recorded as 90. Cancelled orders, non-numeric lab results and rows of unknown stays are
skipped and counted, never read as zero.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

from clinsight.data.csv_tables import read_table
from clinsight.data.longitudinal import (
    RELATIVE_EPOCH,
    Code,
    Cohort,
    Event,
    EventKind,
    LoadReport,
    Measurement,
    PatientRecord,
    Visit,
)
from clinsight.errors import DataError, DataNotFoundError

__all__ = ["DIAGNOSIS_TEXT", "HICL", "LAB", "load_eicu"]

ICD9 = "http://hl7.org/fhir/sid/icd-9-cm"
HICL = "urn:clinsight:eicu:hicl"
DIAGNOSIS_TEXT = "urn:clinsight:eicu:diagnosis"
DRUG_NAME = "urn:clinsight:eicu:drug"
LAB = "urn:clinsight:eicu:lab"
_HINT = "point at the eICU folder (e.g. ehr/eicu-demo-subset of the data directory)"
_COLUMNS = ("patientunitstayid", "patienthealthsystemstayid", "uniquepid", "gender", "age",
            "hospitaladmitoffset", "hospitaldischargeoffset", "unitdischargeoffset")  # fmt: skip


def _number(text: str) -> float | None:
    """A number written in a text field (minutes, a result), or None."""
    try:
        return float(text)
    except ValueError:
        return None


def _age(text: str) -> float | None:
    text = text.strip()
    if text.startswith(">"):
        return 90.0
    return _number(text) if text else None


def _first_stays(
    rows: list[dict[str, str]], report: LoadReport
) -> tuple[dict[str, list[dict[str, str]]], dict[str, tuple[str, datetime]]]:
    """Each patient's unit stays of their first hospital stay, and every kept unit stay's
    patient and admission time."""
    by_patient: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        by_patient[row["uniquepid"]].append(row)
    kept: dict[str, list[dict[str, str]]] = {}
    starts: dict[str, tuple[str, datetime]] = {}
    for patient, stays in by_patient.items():
        first = min(stays, key=lambda r: (r.get("hospitaldischargeyear", ""),
                                          int(r["patienthealthsystemstayid"])))  # fmt: skip
        hospital = first["patienthealthsystemstayid"]
        kept[patient] = []
        for stay in stays:
            offset = _number(stay["hospitaladmitoffset"])
            if stay["patienthealthsystemstayid"] != hospital:
                report.skip("unit stay of a later hospital stay (eICU gives no time between "
                            "hospital stays)", stay["patientunitstayid"])  # fmt: skip
                continue
            if offset is None:
                report.skip("unit stay without a hospital admission offset",
                            stay["patientunitstayid"])  # fmt: skip
                continue
            kept[patient].append(stay)
            starts[stay["patientunitstayid"]] = (
                patient,
                RELATIVE_EPOCH - timedelta(minutes=offset),
            )
    return kept, starts


def load_eicu(folder: Path) -> Cohort:
    """Every patient of the eICU folder with their first hospital stay's unit stays,
    diagnoses, drugs and lab results.

    Raises:
        DataNotFoundError: the folder or its patient table is missing.
        DataError: the patient table lacks a required column.
    """
    if not folder.is_dir():
        raise DataNotFoundError(f"{folder} is not a folder of eICU CSV files.")
    report = LoadReport(source=f"eICU ({folder.name})")
    patients = read_table(folder, "patient", hint=_HINT)
    missing = [c for c in _COLUMNS if patients and c not in patients[0]]
    if missing:
        raise DataError(f"the eICU patient table lacks column(s) {', '.join(missing)}.")
    report.rows_read += len(patients)
    stays, starts = _first_stays(patients, report)
    later = {r["patientunitstayid"] for r in patients} - set(starts)

    def at(stay: str, offset: str, what: str) -> tuple[str, datetime] | None:
        known, minutes = starts.get(stay), _number(offset)
        if stay in later:
            report.skip(f"{what} row of a later hospital stay", stay)
            return None
        if known is None or minutes is None:
            report.skip(f"{what} row of an unknown unit stay or without an offset", stay)
            return None
        return known[0], known[1] + timedelta(minutes=minutes)

    events: dict[str, list[Event]] = defaultdict(list)
    measurements: dict[str, list[Measurement]] = defaultdict(list)
    for row in read_table(folder, "diagnosis", required=False):
        report.rows_read += 1
        placed = at(row["patientunitstayid"], row.get("diagnosisoffset", ""), "diagnosis")
        if placed is None:
            continue
        icd9 = row.get("icd9code", "").split(",")[0].strip()
        text = row.get("diagnosisstring", "").strip()
        code = Code(ICD9, icd9, text or None) if icd9 else Code(DIAGNOSIS_TEXT, text, text)
        if not icd9 and not text:
            report.skip("diagnosis row without a code or a text", row["patientunitstayid"])
            continue
        events[placed[0]].append(Event(EventKind.CONDITION, code, placed[1],
                                       visit_id=row["patientunitstayid"]))  # fmt: skip
    for row in read_table(folder, "medication", required=False):
        report.rows_read += 1
        if row.get("drugordercancelled", "").lower() == "yes":
            report.skip("cancelled medication order", row.get("medicationid", ""))
            continue
        placed = at(row["patientunitstayid"], row.get("drugstartoffset", ""), "medication")
        if placed is None:
            continue
        hicl, name = row.get("drughiclseqno", "").split(".")[0], row.get("drugname", "").strip()
        if not hicl and not name:
            report.skip("medication row without a HICL code or a drug name", row["medicationid"])
            continue
        code = Code(HICL, hicl, name or None) if hicl else Code(DRUG_NAME, name.lower(), name)
        events[placed[0]].append(Event(EventKind.DRUG, code, placed[1],
                                       visit_id=row["patientunitstayid"]))  # fmt: skip
    for row in read_table(folder, "lab", required=False):
        report.rows_read += 1
        value = _number(row.get("labresult", ""))
        if value is None:
            report.skip("lab row without a numeric result", row.get("labid", ""))
            continue
        placed = at(row["patientunitstayid"], row.get("labresultoffset", ""), "lab")
        if placed is None:
            continue
        unit = row.get("labmeasurenamesystem", "").strip() or None
        lab = Code(LAB, row["labname"])
        measurements[placed[0]].append(
            Measurement(lab, placed[1], value, unit, row["patientunitstayid"])
        )
    records = [_record(patient, own, starts, events, measurements) for patient, own in stays.items()
               if own]  # fmt: skip
    report.patients = len(records)
    return Cohort(tuple(records), report)


def _record(
    patient: str,
    stays: list[dict[str, str]],
    starts: dict[str, tuple[str, datetime]],
    events: dict[str, list[Event]],
    measurements: dict[str, list[Measurement]],
) -> PatientRecord:
    """One patient's record from their kept unit stays."""
    visits, mine = [], list(events.get(patient, []))
    for stay in stays:
        stay_id = stay["patientunitstayid"]
        start = starts[stay_id][1]
        length = _number(stay["unitdischargeoffset"])
        end = start + timedelta(minutes=length) if length is not None and length >= 0 else None
        visits.append(Visit(stay_id, start, end, stay.get("unittype", "") or "icu"))
        hospital_end = _number(stay["hospitaldischargeoffset"])
        if stay.get("hospitaldischargestatus") == "Expired" and hospital_end is not None:
            died = start + timedelta(minutes=hospital_end)
            if not any(e.kind is EventKind.DEATH for e in mine):
                mine.append(Event(EventKind.DEATH, Code("urn:clinsight:event", "death"), died))
    age = _age(stays[0]["age"])
    sex = {"male": "male", "female": "female"}.get(stays[0]["gender"].lower())
    return PatientRecord(
        patient, None, sex, tuple(visits), tuple(mine), tuple(measurements.get(patient, [])),
        static={} if age is None else {"age": age}, relative_times=True,
    )  # fmt: skip
