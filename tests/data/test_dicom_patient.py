"""The DICOM header's patient against the chart, and ages against an intended population."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from clinsight.data.dicom_patient import (
    DicomPatient,
    PatientMismatch,
    compare_with_chart,
    names_match,
    read_dicom_patient,
)
from clinsight.data.intended_population import IntendedPopulation, age_in_years
from clinsight.data.medmnist import dataset_info
from clinsight.errors import DataError
from tests.support.dicom import dicom_for

RG1 = Path("dicom") / "pydicom_data" / "RG1_J2KI.dcm"
BOY: dict[str, Any] = {
    "name": "Tom Thumb", "mrn": "MRN-7", "birth_date": date(2019, 5, 1), "sex": "male",
}  # fmt: skip


def test_the_header_of_a_real_file_is_read_without_its_pixels(data_dir: Path) -> None:
    header = read_dicom_patient((data_dir / RG1).read_bytes())
    assert header == DicomPatient(
        name="CompressedSamples RG1", patient_id="9RG1", birth_date=date(1940, 3, 5),
        sex="female", study_date=date(2004, 8, 26),
    )  # fmt: skip


def test_a_woman_born_1940_filed_under_a_boy_born_2019_mismatches_in_every_field(
    data_dir: Path,
) -> None:
    header = read_dicom_patient((data_dir / RG1).read_bytes())
    found = compare_with_chart(header, **BOY)
    assert [m.message for m in found] == [
        "Name: the DICOM file says “CompressedSamples RG1”, the chart “Tom Thumb”.",
        "Patient ID: the DICOM file says “9RG1”, the chart MRN “MRN-7”.",
        "Birth date: the DICOM file says 1940-03-05, the chart 2019-05-01.",
        "Sex: the DICOM file says female, the chart male.",
    ]


def test_the_same_patient_matches_and_missing_fields_are_not_compared(data_dir: Path) -> None:
    content = dicom_for(data_dir / RG1, name="Tom Thumb", mrn="mrn-7", birth_date="2019-05-01",
                        sex="male")  # fmt: skip
    assert compare_with_chart(read_dicom_patient(content), **BOY) == []
    assert compare_with_chart(DicomPatient(), **BOY) == []
    unknown = {**BOY, "sex": "unknown"}
    assert compare_with_chart(DicomPatient(sex="female"), **unknown) == []
    assert read_dicom_patient(b"\x89PNG not a DICOM at all") == DicomPatient()


@pytest.mark.parametrize(
    ("dicom", "chart", "same"),
    [
        ("THUMB^TOM", "Tom Thumb", True),  # separators, case, order
        ("Thumb^Tom^Albert", "Tom Thumb", True),  # a middle name left out
        ("Müller^Jürgen", "Jurgen Muller", True),  # accents
        ("O’Brien^Seán", "Sean O'Brien", True),  # apostrophes
        ("Thumb^Tom", "Tom Thumb-Smith", True),  # half of a double-barrelled surname
        ("Thumb^Tim", "Tom Thumb", False),
        ("Thumb", "Tom Thumb", False),  # one part is not enough to call them the same
        ("Smith^Anna", "Tom Thumb", False),
    ],
)
def test_names_compare_leniently(dicom: str, chart: str, same: bool) -> None:
    assert names_match(dicom, chart) is same


def test_a_mismatch_names_its_field_in_words() -> None:
    assert PatientMismatch("birth_date", "1940-03-05", "2019-05-01").message == (
        "Birth date: the DICOM file says 1940-03-05, the chart 2019-05-01."
    )


def test_ages_are_completed_years_and_pneumoniamnist_is_for_children_1_to_5() -> None:
    assert age_in_years(date(2019, 5, 1), date(2024, 4, 30)) == 4
    assert age_in_years(date(2019, 5, 1), date(2024, 5, 1)) == 5
    assert age_in_years(date(2019, 5, 1), date(2004, 8, 26)) == -15
    population = dataset_info("pneumoniamnist").population
    assert population is not None
    assert (population.min_age_years, population.max_age_years) == (1, 5)
    assert "Kermany" in population.source
    assert [population.contains(age) for age in (0, 1, 5, 6)] == [False, True, True, False]
    assert IntendedPopulation.from_dict(population.to_dict()) == population
    assert dataset_info("breastmnist").population is None
    with pytest.raises(DataError, match="needs 0 <= min <= max; got 6-5 years"):
        IntendedPopulation(6, 5, "", "")
