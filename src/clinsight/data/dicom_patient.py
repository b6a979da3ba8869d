"""Who a DICOM file says the patient is, compared with the chart it is filed under.

The header's Patient's Name, Patient ID, Birth Date and Sex are read without the pixels.
A field missing from either side is not compared. Names compare leniently: the `^`
component separators, case, accents, apostrophes and order do not count, and one name
may leave out parts of the other (a middle name, half of a double-barrelled surname), as
long as two parts agree.
"""

from __future__ import annotations

import io
import re
import unicodedata
from dataclasses import dataclass
from datetime import date

import pydicom
from pydicom.dataset import Dataset

__all__ = [
    "DicomPatient",
    "PatientMismatch",
    "compare_with_chart",
    "names_match",
    "read_dicom_patient",
]

_SEX = {"M": "male", "F": "female", "O": "other"}
_FIELD_WORDS = {
    "name": "Name", "patient_id": "Patient ID", "birth_date": "Birth date", "sex": "Sex",
}  # fmt: skip


@dataclass(frozen=True)
class DicomPatient:
    """The patient attributes of a DICOM header (None where absent or unreadable)."""

    name: str | None = None
    patient_id: str | None = None
    birth_date: date | None = None
    sex: str | None = None
    study_date: date | None = None


@dataclass(frozen=True)
class PatientMismatch:
    """One field where the DICOM header and the chart disagree."""

    field: str
    dicom: str
    chart: str

    @property
    def message(self) -> str:
        """The disagreement in words, e.g. 'Sex: the DICOM file says female, the chart male.'"""
        what = _FIELD_WORDS[self.field]
        return f"{what}: the DICOM file says {self.dicom}, the chart {self.chart}."


def _date(value: object) -> date | None:
    text = str(value or "").strip()
    if not re.fullmatch(r"\d{8}", text):
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def _text(value: object) -> str | None:
    text = str(value or "").strip()
    return text or None


def _person_name(value: object) -> str | None:
    """The alphabetic group of a PN value, its components joined by spaces."""
    alphabetic = str(value or "").split("=")[0]
    return _text(" ".join(part for part in alphabetic.split("^") if part.strip()))


def read_dicom_patient(content: bytes) -> DicomPatient:
    """The patient attributes of DICOM bytes (the image itself is read by `read_dicom`);
    an unparsable header gives an empty `DicomPatient`."""
    data = content[4:] if content.startswith(b"DICM") else content  # as `read_dicom`
    try:
        dataset: Dataset = pydicom.dcmread(io.BytesIO(data), force=True, stop_before_pixels=True)
        sex = str(dataset.get("PatientSex", "")).strip().upper()
        return DicomPatient(
            name=_person_name(dataset.get("PatientName")),
            patient_id=_text(dataset.get("PatientID")),
            birth_date=_date(dataset.get("PatientBirthDate")),
            sex=_SEX.get(sex),
            study_date=_date(dataset.get("StudyDate") or dataset.get("AcquisitionDate")),
        )
    except Exception:  # untrusted bytes: a header that cannot be read compares nothing
        return DicomPatient()


def _name_parts(name: str) -> set[str]:
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    plain = re.sub(r"['`]", "", plain.lower())  # O'Brien is OBrien
    return {part for part in re.split(r"[^a-z0-9]+", plain) if part}


def names_match(dicom_name: str, chart_name: str) -> bool:
    """Whether two names are the same person's (see the module for how lenient)."""
    first, second = _name_parts(dicom_name), _name_parts(chart_name)
    if not first or not second:
        return True
    if first == second:
        return True
    smaller, larger = sorted((first, second), key=len)
    return len(smaller) >= 2 and smaller <= larger


def compare_with_chart(
    header: DicomPatient, *, name: str, mrn: str, birth_date: date, sex: str
) -> list[PatientMismatch]:
    """The fields where the DICOM header contradicts the chart (name, MRN, birth date, sex)."""
    found: list[PatientMismatch] = []
    if header.name and not names_match(header.name, name):
        found.append(PatientMismatch("name", f"“{header.name}”", f"“{name}”"))
    if header.patient_id and header.patient_id.casefold() != mrn.strip().casefold():
        found.append(PatientMismatch("patient_id", f"“{header.patient_id}”", f"MRN “{mrn}”"))
    if header.birth_date and header.birth_date != birth_date:
        found.append(
            PatientMismatch("birth_date", header.birth_date.isoformat(), birth_date.isoformat())
        )
    if header.sex and sex not in ("unknown", "") and header.sex != sex:
        found.append(PatientMismatch("sex", header.sex, sex))
    return found
