"""Detectors that generalise: hand-written sentences, none taken from a benchmark set."""

from __future__ import annotations

import pytest

from clinsight.nlp.deid import PHIType, deidentify, find_phi


def _found(text: str) -> dict[str, str]:
    return {s.text: s.type.value for s in find_phi(text)}


def _covered(text: str, value: str) -> bool:
    start = text.index(value)
    spans = find_phi(text)
    return all(
        any(s.start <= i < s.end for s in spans)
        for i in range(start, start + len(value))
        if text[i].isalnum()
    )


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Seen in clinic by Dr. Oluwaseun Adeyemi-Bakare today.", "Oluwaseun Adeyemi-Bakare"),
        ("Mrs. O'Sullivan-Hughes tolerated the infusion.", "O'Sullivan-Hughes"),
        ("Patient: Castellanos, Ximena R.\nDOB on file.", "Castellanos, Ximena R."),
        ("Her husband Radoslaw was at the bedside.", "Radoslaw"),
        ("Discussed with Thanh Huong Pham, NP, by phone.", "Thanh Huong Pham"),
        ("Referred by J. K. Abernathy for a second opinion.", "J. K. Abernathy"),
        ("Kwabena Mensah is a 58-year-old man with gout.", "Kwabena Mensah"),
        ("Imported by Herr Günther Weißmüller last spring.", "Günther Weißmüller"),
        ("Signed: Fatima al-Zahra Haddad, MD", "Fatima al-Zahra Haddad"),
        ("We spoke with Ingrid van der Berg about the plan.", "Ingrid van der Berg"),
    ],
)
def test_names_of_any_culture(text: str, value: str) -> None:
    assert _covered(text, value)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (
            "Transferred from St. Bartholomew's Hospital, Leeds for care.",
            "St. Bartholomew's Hospital, Leeds",
        ),
        ("She now lives at Willowbrook Nursing Home.", "Willowbrook Nursing Home"),
        ("He lives in Chattanooga with his brother.", "Chattanooga"),
        (
            "Mailing address 4471 Quarry Ridge Ln, Apt 2B, Dayton, OH 45402.",
            "4471 Quarry Ridge Ln, Apt 2B",
        ),
        ("Mailing address 4471 Quarry Ridge Ln, Apt 2B, Dayton, OH 45402.", "Dayton, OH 45402"),
        ("Her flat is at Kastanienallee 12, 10435 Berlin.", "Kastanienallee 12"),
        ("Her flat is at Kastanienallee 12, 10435 Berlin.", "10435 Berlin"),
        ("The crash happened on Interstate 80 near the exit.", "Interstate 80"),
        ("Postcode EH3 9DR was confirmed at registration.", "EH3 9DR"),
        ("Follow-up at the Hôpital Lariboisière cardiology unit.", "Hôpital Lariboisière"),
    ],
)
def test_places_and_facilities(text: str, value: str) -> None:
    assert _covered(text, value)


@pytest.mark.parametrize(
    "value",
    [
        "12-Aug-2022",
        "Tuesday, May 6, 2025",
        "10/2019",
        "May 2025",
        "the 21st of March",
        "March 21st",
        "2019-11-02",
        "14.02.2021",
        "3 Feb 2020",
        "Sept. 9, 2018",
    ],
)
def test_dates_in_every_written_form(value: str) -> None:
    text = f"The fall happened {value} at home."
    assert _covered(text, value)
    assert any(s.type is PHIType.DATE for s in find_phi(text))


@pytest.mark.parametrize(
    ("text", "value", "kind"),
    [
        ("Pacemaker serial no. QX7-44821-B checked.", "QX7-44821-B", "ID"),
        ("Driver's licence number D4410-77821 was copied.", "D4410-77821", "ID"),
        ("Encounter number 20488173 opened.", "20488173", "ID"),
        ("Vehicle plate 8KDW392 was noted.", "8KDW392", "ID"),
        ("Call +49 30 901820 or +33 1 42 68 53 00.", "+49 30 901820", "PHONE"),
        ("Call +49 30 901820 or +33 1 42 68 53 00.", "+33 1 42 68 53 00", "PHONE"),
        ("Fax (617) 555-0148 the consent.", "(617) 555-0148", "FAX"),
        (
            "Mail r.tanaka+clinic@kyoto-med.example.jp please.",
            "r.tanaka+clinic@kyoto-med.example.jp",
            "EMAIL",
        ),
        ("Monitor at fe80::1ff:fe23:4567:890a went offline.", "fe80::1ff:fe23:4567:890a", "IP"),
        ("Social security 219-09-9999 on file.", "219-09-9999", "ID"),
        ("She is ninety-four years old.", "ninety-four", "AGE"),
        ("A 101 yo woman with a hip fracture.", "101", "AGE"),
    ],
)
def test_numbers_contacts_and_ages(text: str, value: str, kind: str) -> None:
    assert _found(text).get(value) == kind


@pytest.mark.parametrize(
    "text",
    [
        "BP 128/76, pulse 72, pain 4/10, temperature 37.2 C.",
        "Metformin 1000 mg twice daily; HbA1c 6.9%.",
        "MRI of the lumbar spine shows L4-L5 and L5-S1 disc bulges.",
        "Positive Babinski sign on the left; Romberg negative.",
        "History of Parkinson disease and Crohn disease, in remission.",
        "The Emergency Department called the Intensive Care Unit.",
        "Ejection fraction 55-60%, grade 2/6 murmur, COVID-19 negative.",
        "She is a 45-year-old woman admitted to the hospital for cellulitis.",
    ],
)
def test_clinical_text_without_identifiers_stays(text: str) -> None:
    assert find_phi(text) == []


def test_new_types_get_surrogates() -> None:
    text = "Admitted to St. Agnes Hospital, Baltimore on 12-Aug-2022; seen by Dr. Wojciechowski."
    result = deidentify(text, key="p1", date_shift_days=-3)
    assert "Agnes" not in result.text
    assert "Wojciechowski" not in result.text
    assert "12-Aug-2022" not in result.text
    assert "09-Aug-2022" in result.text


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("Seen in follow-up by Dr. Q today.", {"Q": "NAME"}),
        ("Mr. Y tolerated the infusion; Dr. Z agreed.", {"Y": "NAME", "Z": "NAME"}),
        ("She saw her doctor. I reviewed the films.", {}),
    ],
)
def test_a_single_letter_after_a_capitalised_title_is_a_name(
    text: str, found: dict[str, str]
) -> None:
    assert _found(text) == found
