"""MIMIC-III (or its 100-patient demo) as longitudinal records.

Reads ``PATIENTS``, ``ADMISSIONS`` (visits), ``DIAGNOSES_ICD`` and ``PROCEDURES_ICD``
(ICD-9-CM, with ``D_ICD_*`` titles where present) and ``PRESCRIPTIONS`` (NDC, else the drug
name) from a folder of the CSV files (upper- or lower-case names, optionally gzipped).

Timing: MIMIC codes an admission's diagnoses and procedures at discharge and gives them no
time of their own, so they are dated at the admission's discharge (what a model predicting
at admission must not see); prescriptions keep their start and end dates. Dates are
MIMIC's shifted dates. Patients older than 89 have a birth date shifted by about 300 years
in MIMIC; their birth date is dropped and their age recorded as 90 (the ``age`` static
value), and the report counts them. Rows without a patient, an admission or a code are
skipped and counted, never read as zero.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from pathlib import Path

from clinsight.data.csv_tables import read_table
from clinsight.data.longitudinal import (
    Code,
    Cohort,
    Event,
    EventKind,
    LoadReport,
    PatientRecord,
    Visit,
)
from clinsight.errors import DataError, DataNotFoundError

__all__ = ["ICD9", "NDC", "load_mimic_iii"]

ICD9 = "http://hl7.org/fhir/sid/icd-9-cm"
NDC = "http://hl7.org/fhir/sid/ndc"
DRUG_NAME = "urn:clinsight:mimic-iii:drug"
_MASKED_AGE = 89.0


_HINT = "point at the MIMIC-III folder (e.g. ehr/mimic-iii-demo-1.4 of the data directory)"


def _table(folder: Path, name: str, *, required: bool = True) -> list[dict[str, str]]:
    return read_table(folder, name, required=required, hint=_HINT)


def _time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def _titles(frame: list[dict[str, str]]) -> dict[str, str]:
    return {row["icd9_code"]: row.get("short_title") or row["icd9_code"]
            for row in frame if "icd9_code" in row}  # fmt: skip


def load_mimic_iii(folder: Path) -> Cohort:
    """Every patient of the MIMIC-III folder with their admissions, codes and drugs.

    Raises:
        DataNotFoundError: the folder or one of its required tables is missing.
        DataError: a required column is missing.
    """
    if not folder.is_dir():
        raise DataNotFoundError(f"{folder} is not a folder of MIMIC-III CSV files.")
    report = LoadReport(source=f"MIMIC-III ({folder.name})")
    patients = _table(folder, "PATIENTS")
    admissions = _table(folder, "ADMISSIONS")
    required = ((patients, ("subject_id", "gender", "dob")),
                (admissions, ("subject_id", "hadm_id", "admittime", "dischtime")))  # fmt: skip
    for frame, columns in required:
        missing = [c for c in columns if frame and c not in frame[0]]
        if missing:
            raise DataError(f"MIMIC-III table lacks column(s) {', '.join(missing)}.")
    visits: dict[str, list[Visit]] = defaultdict(list)
    discharge: dict[str, tuple[str, datetime]] = {}
    for row in admissions:
        report.rows_read += 1
        start, end = _time(row["admittime"]), _time(row["dischtime"])
        if start is None or end is None or end < start:
            report.skip("admission without a valid admit and discharge time", row["hadm_id"])
            continue
        kind = (row.get("admission_type") or "unknown").lower()
        visits[row["subject_id"]].append(Visit(row["hadm_id"], start, end, kind))
        discharge[row["hadm_id"]] = (row["subject_id"], end)
    events: dict[str, list[Event]] = defaultdict(list)
    coded = (("DIAGNOSES_ICD", EventKind.CONDITION, "D_ICD_DIAGNOSES"),
             ("PROCEDURES_ICD", EventKind.PROCEDURE, "D_ICD_PROCEDURES"))  # fmt: skip
    for table, kind, titles in coded:
        rows = _table(folder, table, required=kind is EventKind.CONDITION)
        _coded(rows, kind, _titles(_table(folder, titles, required=False)), discharge, events,
               report)  # fmt: skip
    _drugs(_table(folder, "PRESCRIPTIONS", required=False), discharge, events, report)
    records = []
    for row in patients:
        report.rows_read += 1
        subject = row["subject_id"]
        born = _time(row["dob"])
        own = visits.get(subject, [])
        static: dict[str, float] = {}
        birth = born.date() if born else None
        if born is not None and own and (own[0].start - born).days / 365.25 > _MASKED_AGE:
            birth, static = None, {"age": _MASKED_AGE + 1}
            report.skip("birth date shifted by MIMIC (age over 89): age recorded as 90",
                        subject)  # fmt: skip
        died = _time(row.get("dod", ""))
        mine = list(events.get(subject, []))
        if died is not None:
            mine.append(Event(EventKind.DEATH, Code("urn:clinsight:event", "death"), died))
        sex = {"M": "male", "F": "female"}.get(row["gender"])
        records.append(PatientRecord(subject, birth, sex, tuple(own), tuple(mine),
                                     static=static))  # fmt: skip
    report.patients = len(records)
    return Cohort(tuple(records), report)


def _coded(
    frame: list[dict[str, str]],
    kind: EventKind,
    titles: dict[str, str],
    discharge: dict[str, tuple[str, datetime]],
    events: dict[str, list[Event]],
    report: LoadReport,
) -> None:
    """ICD-9 rows of an admission, dated at its discharge."""
    for row in frame:
        report.rows_read += 1
        code, hadm = row.get("icd9_code", "").strip(), row.get("hadm_id", "")
        if not code:
            report.skip(f"{kind.value} row without an ICD-9 code", hadm)
            continue
        admission = discharge.get(hadm)
        if admission is None:
            report.skip(f"{kind.value} row of an unknown admission", hadm)
            continue
        subject, end = admission
        events[subject].append(Event(kind, Code(ICD9, code, titles.get(code)), end, visit_id=hadm))


def _drugs(
    frame: list[dict[str, str]],
    discharge: dict[str, tuple[str, datetime]],
    events: dict[str, list[Event]],
    report: LoadReport,
) -> None:
    """Prescriptions by NDC (the drug's name where MIMIC gives no NDC), with their dates."""
    for fields in frame:
        report.rows_read += 1
        start = _time(fields.get("startdate", ""))
        admission = discharge.get(fields.get("hadm_id", ""))
        if admission is None or start is None:
            report.skip("prescription without a known admission or a start date",
                        str(fields.get("row_id", "")))  # fmt: skip
            continue
        ndc, name = str(fields.get("ndc", "")).strip(), str(fields.get("drug", "")).strip()
        if ndc and ndc != "0":
            code = Code(NDC, ndc, name or None)
        elif name:
            code = Code(DRUG_NAME, name.lower(), name)
        else:
            report.skip("prescription without an NDC or a drug name", str(fields.get("row_id")))
            continue
        end = _time(fields.get("enddate", ""))
        events[admission[0]].append(Event(EventKind.DRUG, code, start,
                                          end if end and end >= start else None,
                                          visit_id=fields["hadm_id"]))  # fmt: skip
