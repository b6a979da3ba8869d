"""DICOM files of the shared data, their patient attributes rewritten for a test's chart."""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path

import pydicom

__all__ = ["dicom_for"]

_SEX = {"female": "F", "male": "M", "other": "O"}


def dicom_for(
    path: Path, *, name: str, mrn: str, birth_date: str, sex: str, study_date: str | None = None
) -> bytes:
    """The DICOM at `path` with the given chart's patient ("First Last" becomes "Last^First")
    and, if given, study date (ISO dates)."""
    dataset = pydicom.dcmread(path)
    first, _, last = name.rpartition(" ")
    dataset.PatientName = f"{last}^{first}" if first else last
    dataset.PatientID = mrn
    dataset.PatientBirthDate = date.fromisoformat(birth_date).strftime("%Y%m%d")
    dataset.PatientSex = _SEX.get(sex, "")
    if study_date is not None:
        dataset.StudyDate = date.fromisoformat(study_date).strftime("%Y%m%d")
    out = io.BytesIO()
    dataset.save_as(out)
    return out.getvalue()
